-- qonnx-spartan buffer between layers: one write port, one registered read port (latency 1).
-- STYLE ("block" | "distributed") becomes the ram_style attribute Vivado reads; the synth runner sets it
-- again on the yosys side because GHDL's synthesis drops it.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;

entity qs_ram is
  generic (
    WIDTH : positive;
    DEPTH : positive;
    ABITS : positive;
    STYLE : string := "distributed");
  port (
    clk   : in  std_logic;
    we    : in  std_logic;
    waddr : in  unsigned(ABITS - 1 downto 0);
    wdata : in  std_logic_vector(WIDTH - 1 downto 0);
    raddr : in  unsigned(ABITS - 1 downto 0);
    rdata : out std_logic_vector(WIDTH - 1 downto 0));
end entity;

architecture rtl of qs_ram is
  -- at least two words: a one-bit address must not index past the memory (GHDL's synthesis asserts on it).
  -- Arrays are declared "downto": GHDL's synthesis subtracts the address from the top index of a "to"
  -- array, an adder on every port.
  constant WORDS : positive := maximum(DEPTH, 2);
  type mem_t is array (WORDS - 1 downto 0) of std_logic_vector(WIDTH - 1 downto 0);
  signal mem : mem_t := (others => (others => '0'));
  attribute ram_style : string;
  attribute ram_style of mem : signal is STYLE;
begin
  process (clk)
  begin
    if rising_edge(clk) then
      if we = '1' then
        mem(to_integer(waddr)) <= wdata;
      end if;
      rdata <= mem(to_integer(raddr));
    end if;
  end process;
end architecture;
