-- qonnx-spartan product in logic: p <= a * b registered, kept out of the DSP48E1s.
-- A MAC lane whose product the estimator places in LUTs (product_style "logic", when DSPs run out before
-- LUTs) multiplies here.  Vivado reads the use_dsp attribute; yosys's synth_xilinx has no per-cell switch,
-- so the synth runner maps this entity's multiplier with `booth` before DSP mapping (qonnx_spartan/synth.py).
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;

entity qs_mul_logic is
  generic (
    AW : positive;
    BW : positive);
  port (
    clk : in  std_logic;
    en  : in  std_logic;
    a   : in  signed(AW - 1 downto 0);
    b   : in  signed(BW - 1 downto 0);
    p   : out signed(AW + BW - 1 downto 0));
  attribute use_dsp : string;
  attribute use_dsp of qs_mul_logic : entity is "no";
end entity;

architecture rtl of qs_mul_logic is
  signal product : signed(AW + BW - 1 downto 0) := (others => '0');
begin
  process (clk)
  begin
    if rising_edge(clk) then
      if en = '1' then
        product <= a * b;
      end if;
    end if;
  end process;
  p <= product;
end architecture;
