-- qonnx-spartan integer arithmetic: the VHDL twin of qonnx_spartan/intarith.py.
-- y = saturate(round_half_even(acc * M / 2**s)); every op ends with this.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;

package qs_arith is
  -- v / 2**s rounded half to even (the rounding of QONNX Quant with rounding_mode ROUND)
  function shift_round_half_even(v : signed; s : natural) return signed;
  -- the same for v that holds x + 2**(s-1) (added where it costs nothing): x / 2**s rounded half to even
  -- is v / 2**s floored, with bit 0 cleared when v's s low bits are 0 (a tie); v'length - s >= 2
  function shift_rounded(v : signed; s : positive) return signed;
  -- clamp v to [lo, hi] and return it w bits wide
  function saturate(v : signed; lo, hi : integer; w : positive) return signed;
  -- the whole requantisation in one call (the ops pipeline the multiply and the rest)
  function requantize(acc : signed; m : positive; s : natural; lo, hi : integer; w : positive) return signed;
  -- bits of an unsigned value m, at least 1
  function bits_of(m : natural) return positive;
end package;

package body qs_arith is
  function bits_of(m : natural) return positive is
    variable n : positive := 1;
  begin
    while n < 31 and 2 ** n <= m loop
      n := n + 1;
    end loop;
    return n;
  end function;

  function shift_round_half_even(v : signed; s : natural) return signed is
    constant L : positive := maximum(v'length, s + 2);
    variable x : signed(L - 1 downto 0);
    variable floor_v : signed(L - 1 downto 0);
    variable guard, sticky, round_up : std_logic;
  begin
    if s = 0 then
      return v;
    end if;
    x := resize(v, L);
    floor_v := shift_right(x, s);
    guard := x(s - 1);
    sticky := '0';
    for i in 0 to s - 2 loop
      sticky := sticky or x(i);
    end loop;
    round_up := guard and (sticky or floor_v(0));
    if round_up = '1' then
      floor_v := floor_v + 1;
    end if;
    return resize(floor_v, v'length);
  end function;

  function shift_rounded(v : signed; s : positive) return signed is
    alias x : signed(v'length - 1 downto 0) is v;
    variable q : signed(v'length - s - 1 downto 0);
  begin
    q := x(x'length - 1 downto s);
    if x(s - 1 downto 0) = 0 then
      q(0) := '0';
    end if;
    return q;
  end function;

  -- Compares only 32-bit quantities: GHDL's synthesis zero-extends a negative integer bound compared with
  -- a wider vector, and writes wider constants as strings yosys misreads.  A value that does not fit 32
  -- bits lies beyond both bounds (which are VHDL integers) on the side of its sign.
  function saturate(v : signed; lo, hi : integer; w : positive) return signed is
    alias x : signed(v'length - 1 downto 0) is v;
    variable narrow : signed(31 downto 0);
    variable fits : boolean := true;
  begin
    if x'length > 32 then
      for i in 31 to x'length - 1 loop
        if x(i) /= x(x'length - 1) then
          fits := false;
        end if;
      end loop;
    end if;
    narrow := resize(x, 32);
    if not fits then
      if x(x'length - 1) = '1' then
        return to_signed(lo, w);
      end if;
      return to_signed(hi, w);
    elsif narrow < to_signed(lo, 32) then
      return to_signed(lo, w);
    elsif narrow > to_signed(hi, 32) then
      return to_signed(hi, w);
    end if;
    return resize(x, w);
  end function;

  function requantize(acc : signed; m : positive; s : natural; lo, hi : integer; w : positive) return signed is
    constant MS : signed(bits_of(m) downto 0) := to_signed(m, bits_of(m) + 1);
    variable product : signed(acc'length + MS'length - 1 downto 0);
  begin
    product := acc * MS;
    return saturate(shift_round_half_even(product, s), lo, hi, w);
  end function;
end package body;
