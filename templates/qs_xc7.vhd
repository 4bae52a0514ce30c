-- The XC7 cells that ROMs in LUTs are built from (UG953): synthesis keeps them as they are; simulation
-- binds them to the models in sim/qs_xc7_cells.vhd.
library ieee;
use ieee.std_logic_1164.all;

package qs_xc7 is
  component LUT6
    generic (INIT : bit_vector(63 downto 0) := (others => '0'));
    port (O : out std_ulogic; I0, I1, I2, I3, I4, I5 : in std_ulogic);
  end component;
  component MUXF7
    port (O : out std_ulogic; I0, I1, S : in std_ulogic);
  end component;
  component MUXF8
    port (O : out std_ulogic; I0, I1, S : in std_ulogic);
  end component;
end package;
