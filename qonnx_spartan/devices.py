"""Device profiles: the capacities a budget is checked against.

Numbers from Xilinx DS180 (7 Series FPGAs Data Sheet: Overview), table 1 (Spartan-7) and table 4
(Artix-7): LUTs are 4 per slice; LUTRAM is the distributed RAM capacity in LUTs (64 bits each, SLICEM
only); BRAM18 is twice the count of 36 Kb block RAMs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Device(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    part: str  # a default part (package and speed grade) for Vivado
    LUT: int
    LUTRAM: int
    FF: int
    BRAM18: int
    DSP: int

    def capacities(self) -> dict[str, int]:
        return {"LUT": self.LUT, "LUTRAM": self.LUTRAM, "FF": self.FF, "BRAM18": self.BRAM18, "DSP": self.DSP}


DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        Device(name="xc7s6", part="xc7s6ftgb196-1", LUT=3752, LUTRAM=1120, FF=7500, BRAM18=10, DSP=10),
        Device(name="xc7s15", part="xc7s15ftgb196-2", LUT=8000, LUTRAM=2400, FF=16000, BRAM18=20, DSP=20),
        Device(name="xc7s25", part="xc7s25csga324-1", LUT=14600, LUTRAM=5008, FF=29200, BRAM18=90, DSP=80),
        Device(name="xc7s50", part="xc7s50csga324-1", LUT=32600, LUTRAM=9600, FF=65200, BRAM18=150, DSP=120),
        Device(name="xc7a35t", part="xc7a35tcpg236-1", LUT=20800, LUTRAM=6400, FF=41600, BRAM18=100, DSP=90),
    )
}

DEFAULT_DEVICE = "xc7s15"
