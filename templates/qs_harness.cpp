// qonnx-spartan compiled test bench: templates/tb.vhd.j2's protocol in C++, over the design Verilator made
// of qs_top.  Usage: harness IN_FILE OUT_FILE IN_COUNT OUT_COUNT MAX_CYCLES
// IN_FILE holds one vector per line, each element as the unsigned value of its two's complement bits.
// OUT_FILE gets one line per vector, as the VHDL test bench writes it: the cycles from the first input beat
// to the last output beat (both included), then each output word's bits in hexadecimal (the runner
// sign-extends them).  Signals are sampled before each rising edge, as the VHDL test bench sees them.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "Vqs_top.h"
#include "verilated.h"

static void put(FILE* f, uint64_t word) { std::fprintf(f, " %" PRIx64, word); }

template <std::size_t N>
static void put(FILE* f, const VlWide<N>& word) {  // wider than 64 bits: 32-bit pieces, most significant first
  std::fprintf(f, " %" PRIx32, word[N - 1]);
  for (std::size_t i = N - 1; i-- > 0;) std::fprintf(f, "%08" PRIx32, word[i]);
}

[[noreturn]] static void fail(const char* what) {
  std::fprintf(stderr, "harness: %s\n", what);
  std::exit(1);
}

int main(int argc, char** argv) {
  if (argc != 6) fail("usage: harness IN_FILE OUT_FILE IN_COUNT OUT_COUNT MAX_CYCLES");
  FILE* in = std::fopen(argv[1], "r");
  FILE* out = std::fopen(argv[2], "w");
  if (!in || !out) fail("cannot open the input or output file");
  const long in_count = std::atol(argv[3]), out_count = std::atol(argv[4]);
  const uint64_t max_cycles = std::strtoull(argv[5], nullptr, 10);

  VerilatedContext context;
  Vqs_top top{&context};
  uint64_t edges = 0;  // rising edges so far: the VHDL test bench's `cycle` just before the next one
  auto tick = [&] {
    top.clk = 1;
    top.eval();
    top.clk = 0;
    top.eval();
    ++edges;
  };
  top.clk = 0;
  top.rst = 1;
  top.s_axis_tvalid = 0;
  top.s_axis_tlast = 0;
  top.m_axis_tready = 1;
  top.eval();
  tick();  // reset over the first two rising edges, as the VHDL test bench holds it
  tick();
  top.rst = 0;

  std::vector<unsigned long long> vector(in_count);
  for (;;) {
    long read = 0;
    while (read < in_count && std::fscanf(in, "%llu", &vector[read]) == 1) ++read;
    if (read == 0) break;
    if (read != in_count) fail("an input line is shorter than the design's input");
    uint64_t first = 0;
    for (long i = 0; i < in_count; ++i) {
      top.s_axis_tdata = vector[i];
      top.s_axis_tvalid = 1;
      top.s_axis_tlast = i == in_count - 1;
      top.eval();
      for (;;) {
        const bool ready = top.s_axis_tready;
        const uint64_t at = edges;
        tick();
        if (ready) {
          if (i == 0) first = at;
          break;
        }
      }
    }
    top.s_axis_tvalid = 0;
    top.s_axis_tlast = 0;
    top.eval();
    const uint64_t deadline = first + max_cycles;
    std::vector<std::remove_reference_t<decltype(top.m_axis_tdata)>> words(out_count);
    uint64_t last = 0;
    for (long j = 0; j < out_count; ++j) {
      for (;;) {
        const bool fire = top.m_axis_tvalid && top.m_axis_tready;
        const uint64_t at = edges;
        if (fire) {
          words[j] = top.m_axis_tdata;
          if (j == out_count - 1 && !top.m_axis_tlast) fail("tlast missing on the last output");
        }
        tick();
        if (fire) {
          last = at;
          break;
        }
        if (at >= deadline) fail("no output after MAX_CYCLES cycles");
      }
    }
    std::fprintf(out, "%" PRIu64, last - first + 1);
    for (const auto& word : words) put(out, word);
    std::fputc('\n', out);
    std::fflush(out);  // the runner counts finished vectors in this file while the simulation goes on
  }
  top.final();
  return 0;
}
