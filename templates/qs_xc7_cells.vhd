-- Simulation models of the XC7 cells in hdl/qs_xc7.vhd, as UG953 defines them: a LUT6 outputs bit
-- I5..I0 of its INIT, a MUXF7/MUXF8 outputs I1 when S is '1', else I0.  Not for synthesis.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;

entity LUT6 is
  generic (INIT : bit_vector(63 downto 0) := (others => '0'));
  port (O : out std_ulogic; I0, I1, I2, I3, I4, I5 : in std_ulogic);
end entity;

architecture model of LUT6 is
begin
  -- an undefined input reads bit 0, as numeric_std's to_integer makes an undefined address read word 0
  O <= to_stdulogic(INIT(to_integer(unsigned'(I5, I4, I3, I2, I1, I0))));
end architecture;

library ieee;
use ieee.std_logic_1164.all;

entity MUXF7 is
  port (O : out std_ulogic; I0, I1, S : in std_ulogic);
end entity;

architecture model of MUXF7 is
begin
  O <= I1 when S = '1' else I0;
end architecture;

library ieee;
use ieee.std_logic_1164.all;

entity MUXF8 is
  port (O : out std_ulogic; I0, I1, S : in std_ulogic);
end entity;

architecture model of MUXF8 is
begin
  O <= I1 when S = '1' else I0;
end architecture;
