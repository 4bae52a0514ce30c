"""The integer arithmetic: Python against exact fractions, and the VHDL package against Python in GHDL."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from qonnx_spartan.backend import template_environment
from qonnx_spartan.intarith import IntType, Rescale, matmul_range, requantize, shift_round_half_even

WINDOWS = range(2, 33)


def exact_half_even(num: int, shift: int) -> int:
    q = Fraction(num, 2**shift)
    return round(q)  # Python's round() on a Fraction is half to even


@pytest.mark.parametrize("shift", [0, 1, 2, 5, 17, 40])
def test_shift_round_half_even_matches_exact_rounding(shift):
    rng = np.random.default_rng(shift)
    values = list(rng.integers(-(2**45), 2**45, size=2000)) + [0, 1, -1, 2**shift // 2, -(2**shift // 2)]
    if shift:
        values += [(2 * k + 1) * 2 ** (shift - 1) for k in range(-6, 6)]  # every tie, both signs
    got = shift_round_half_even(np.array(values, dtype=np.int64), shift)
    assert [int(g) for g in got] == [exact_half_even(int(v), shift) for v in values]


def test_ties_round_to_even_both_signs():
    v = np.array([1, 3, 5, -1, -3, -5], dtype=np.int64)  # halves after a shift by 1
    assert shift_round_half_even(v, 1).tolist() == [0, 2, 2, 0, -2, -2]


@pytest.mark.parametrize("ratio", [1.0, 0.5, 2**-12, 0.3, 0.0123456, 3.75, 1e-6, 1234.5])
def test_rescale_approximates_ratio(ratio):
    r = Rescale.from_ratio(ratio)
    assert r.multiplier < 2**17
    assert abs(r.ratio - ratio) <= ratio * 2**-16
    if ratio == 2 ** round(np.log2(ratio)):
        assert r.multiplier == 1  # powers of two need no multiplier


def test_requantize_saturates_both_ways():
    r = Rescale(1, 0)
    assert requantize(np.array([-1000, -8, 0, 7, 1000]), r, -8, 7).tolist() == [-8, -8, 0, 7, 7]
    assert requantize(np.array([-5, 300]), r, 0, 255).tolist() == [0, 255]


def test_accumulator_range_is_exact_bound():
    w = np.array([[3, -2], [-4, 1], [2, 2]])
    x = IntType(True, 4)
    lo, hi = matmul_range(x, w, np.array([5, -5]))
    brute = np.array([np.array(i) - 8 for i in np.ndindex(16, 16, 16)]) @ w + np.array([5, -5])
    assert lo == min(brute.min(), 0) and hi == max(brute.max(), 0)


def exact_round(sums: np.ndarray, ratio: Fraction) -> np.ndarray:
    """sums * ratio rounded half to even, on integers."""
    num = sums * ratio.numerator
    floor = num // ratio.denominator
    twice_rem = 2 * (num - floor * ratio.denominator)
    up = (twice_rem > ratio.denominator) | ((twice_rem == ratio.denominator) & (floor % 2 == 1))
    return floor + up


def mean_cases():
    """(sums, ratio) for the mean over every window 2-32 of every 2- to 8-bit input type, every sum it can
    reach, at scale ratios 2**e / n (power-of-two scales: e from the input and output scales)."""
    for bits in range(2, 9):
        for signed in (True, False):
            t = IntType(signed, bits)
            for n in WINDOWS:
                for e in range(-3, 4):
                    yield np.arange(n * t.lo, n * t.hi + 1, dtype=np.int64), Fraction(2) ** e / n


def test_mean_rounds_every_reachable_sum_half_to_even():
    closest_misses = 0
    for sums, ratio in mean_cases():
        rescale = Rescale.for_fraction(ratio, int(sums[0]), int(sums[-1]))
        assert rescale is not None and rescale.multiplier < 2**17, ratio
        want = exact_round(sums, ratio)
        assert np.array_equal(rescale.apply(sums), want), (ratio, sums[0], sums[-1], rescale)
        closest_misses += not np.array_equal(Rescale.from_ratio(float(ratio)).apply(sums), want)
    assert closest_misses > 0  # the closest M, s alone rounds some ties the wrong way: the check can fail


def test_exact_rescale_needs_its_offset_and_its_tie_bits():
    sums = np.arange(-6 * 128, 6 * 127 + 1, dtype=np.int64)
    exact = Rescale.for_fraction(Fraction(1, 6), int(sums[0]), int(sums[-1]))
    want = exact_round(sums, Fraction(1, 6))
    for broken in (
        Rescale(exact.multiplier, exact.shift, 0, exact.tie_bits),  # negative sums' error below 0
        Rescale(exact.multiplier, exact.shift, exact.offset, exact.tie_bits + 1),  # ties missed
        Rescale(exact.multiplier, exact.shift, exact.offset, 1),  # the offset taken for a tie's remainder
    ):
        assert not np.array_equal(broken.apply(sums), want), broken


def test_power_of_two_windows_keep_the_plain_shift():
    assert Rescale.for_fraction(Fraction(1, 8), -800, 800) == Rescale.from_ratio(1 / 8) == Rescale(1, 3)
    assert Rescale.for_fraction(Fraction(3, 64), -800, 800) == Rescale(3, 6)


def test_exact_rescale_refuses_a_range_it_cannot_prove():
    assert Rescale.for_fraction(Fraction(1, 6), -(2**20), 2**20) is None


# -- the VHDL package against Python ------------------------------------------------------------------
TB = """
library ieee; use ieee.std_logic_1164.all; use ieee.numeric_std.all; use std.textio.all;
use work.qs_arith.all;
entity arith_tb is generic (IN_FILE, OUT_FILE : string); end entity;
architecture sim of arith_tb is begin
  process
    file fin : text open read_mode is IN_FILE;
    file fout : text open write_mode is OUT_FILE;
    variable li, lo : line;
    variable acc, m, s, low, high, w : integer;
    variable y, y_half : signed(31 downto 0);
    variable v : signed(63 downto 0);
  begin
    while not endfile(fin) loop
      readline(fin, li);
      read(li, acc); read(li, m); read(li, s); read(li, low); read(li, high); read(li, w);
      y := resize(requantize(to_signed(acc, 32), m, s, low, high, w), 32);
      -- as the templates do it: the half added first (acc * m + 2**(s-1)), then shift_rounded
      y_half := y;
      if s > 0 then
        v := resize(to_signed(acc, 32) * to_signed(m, 19), 64) + shift_left(to_signed(1, 64), s - 1);
        y_half := resize(saturate(shift_rounded(v, s), low, high, w), 32);
      end if;
      write(lo, to_integer(y)); write(lo, ' '); write(lo, to_integer(y_half));
      writeline(fout, lo);
    end loop;
    wait;
  end process;
end architecture;
"""


def edge_cases():
    """Largest products, ties of both signs, saturation both ways; VHDL integers stop at +-(2**31 - 1)."""
    cases = []
    for s in (0, 1, 2, 7, 16, 30, 40):
        for m in (1, 3, 2**17 - 1):
            for acc in (0, 1, -1, 2**31 - 1, -(2**31 - 1), 2**30 + 12345, -(2**20) - 7):
                cases.append((acc, m, s, -128, 127, 8))
                cases.append((acc, m, s, 0, 255, 9))
        for k in range(-5, 6):  # exact ties after the shift, positive and negative
            if 0 < s <= 27:
                cases.append(((2 * k + 1) * 2 ** (s - 1), 1, s, -(2**20), 2**20, 22))
    rng = np.random.default_rng(7)
    for _ in range(300):
        cases.append(
            (
                int(rng.integers(-(2**31 - 1), 2**31)),
                int(rng.integers(1, 2**17)),
                int(rng.integers(0, 48)),
                -(2**15),
                2**15 - 1,
                16,
            )
        )
    return cases


def test_vhdl_requantize_matches_python(tmp_path: Path, ghdl):
    cases = edge_cases()
    pkg = tmp_path / "qs_arith.vhd"
    pkg.write_text(template_environment().loader.get_source(template_environment(), "qs_arith.vhd")[0])
    tb = tmp_path / "arith_tb.vhd"
    tb.write_text(TB)
    (tmp_path / "in.txt").write_text("".join(" ".join(map(str, c)) + "\n" for c in cases))
    for cmd in (
        ["-a", "--std=08", str(pkg)],
        ["-a", "--std=08", str(tb)],
        ["-e", "--std=08", "arith_tb"],
        ["-r", "--std=08", "arith_tb", "-gIN_FILE=in.txt", "-gOUT_FILE=out.txt"],
    ):
        subprocess.run(["ghdl", *cmd], cwd=tmp_path, check=True, capture_output=True)
    vhdl = [[int(v) for v in line.split()] for line in (tmp_path / "out.txt").read_text().splitlines()]
    python = [int(requantize(np.array([acc]), Rescale(m, s), lo, hi)[0]) for acc, m, s, lo, hi, _ in cases]
    assert len(vhdl) == len(cases)
    mismatches = [(c, v, p) for c, v, p in zip(cases, vhdl, python) if v != [p, p]]
    assert not mismatches, mismatches[:5]


MEAN_TB = """
library ieee; use ieee.std_logic_1164.all; use ieee.numeric_std.all; use std.textio.all;
use work.qs_arith.all;
entity mean_tb is generic (IN_FILE, OUT_FILE : string); end entity;
architecture sim of mean_tb is begin
  process
    file fin : text open read_mode is IN_FILE;
    file fout : text open write_mode is OUT_FILE;
    variable li, lo : line;
    variable m, s, offset, tie, first, last : integer;
    variable v : signed(47 downto 0);
  begin
    while not endfile(fin) loop
      readline(fin, li);
      read(li, m); read(li, s); read(li, offset); read(li, tie); read(li, first); read(li, last);
      for acc in first to last loop
        -- as templates/mac.vhd.j2 does it: acc * M + ROUND on the DSP, then shift_rounded from bit TIE up
        v := resize(to_signed(acc, 24) * to_signed(m, 19), 48);
        if s > 0 then
          v := v + (shift_left(to_signed(1, 48), s - 1) + offset);
          write(lo, to_integer(shift_rounded(v(47 downto tie), s - tie)));
        else
          write(lo, to_integer(v));
        end if;
        writeline(fout, lo);
      end loop;
    end loop;
    wait;
  end process;
end architecture;
"""


def test_vhdl_mean_rounding_matches_exact_rounding(tmp_path: Path, ghdl):
    """Every window 2-32, every sum of 8-bit signed inputs (scale ratio 1 / n) and of 4-bit unsigned ones
    (2 / n), through qs_arith.shift_rounded as the MAC template calls it."""
    cases = []
    for t, e in ((IntType(True, 8), 0), (IntType(False, 4), 1)):
        for n in WINDOWS:
            ratio = Fraction(2**e, n)
            cases.append((Rescale.for_fraction(ratio, n * t.lo, n * t.hi), ratio, n * t.lo, n * t.hi))
    pkg = tmp_path / "qs_arith.vhd"
    pkg.write_text(template_environment().loader.get_source(template_environment(), "qs_arith.vhd")[0])
    (tmp_path / "mean_tb.vhd").write_text(MEAN_TB)
    (tmp_path / "in.txt").write_text(
        "".join(f"{r.multiplier} {r.shift} {r.offset} {r.tie_bits} {lo} {hi}\n" for r, _, lo, hi in cases)
    )
    for cmd in (
        ["-a", "--std=08", str(pkg)],
        ["-a", "--std=08", "mean_tb.vhd"],
        ["-e", "--std=08", "mean_tb"],
        ["-r", "--std=08", "mean_tb", "-gIN_FILE=in.txt", "-gOUT_FILE=out.txt"],
    ):
        subprocess.run(["ghdl", *cmd], cwd=tmp_path, check=True, capture_output=True)
    vhdl = np.array([int(v) for v in (tmp_path / "out.txt").read_text().split()])
    want = np.concatenate([exact_round(np.arange(lo, hi + 1, dtype=np.int64), ratio) for _, ratio, lo, hi in cases])
    assert len(vhdl) == len(want) and np.array_equal(vhdl, want)
