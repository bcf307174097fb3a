"""RedNet (Li et al., CVPR 2021, Table 2): ResNet bottlenecks with involution in place of the
3×3 convolution, as in the official d-li14/involution code, usable as classifier or backbone."""
from .rednet import (
    ARCHITECTURES,
    Bottleneck,
    RedNet,
    convert_official_state_dict,
    rednet26,
    rednet38,
    rednet50,
    rednet101,
    rednet152,
)

__all__ = ["ARCHITECTURES", "Bottleneck", "RedNet", "convert_official_state_dict",
           "rednet26", "rednet38", "rednet50", "rednet101", "rednet152"]
