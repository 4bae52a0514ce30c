// qonnx-spartan compiled test bench: templates/tb.vhd.j2's protocol in C++, over the design Verilator made
// of qs_top.  Usage: harness IN_FILE OUT_FILE IN_COUNT MAX_CYCLES OUT_COUNT...  (one count per output stream)
// IN_FILE holds one vector per line, each element as the unsigned value of its two's complement bits.
// OUT_FILE gets one line per vector, as the VHDL test bench writes it: the cycles from the first input beat
// to the last output beat (both included), then each output word's bits in hexadecimal (the runner
// sign-extends them), the streams' in turn.  Signals are sampled before each rising edge, as the VHDL test
// bench sees them.  qs_streams.h, written with the design (verilator.py), names the output streams' ports.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "Vqs_top.h"
#include "qs_streams.h"
#include "verilated.h"

static void put(std::string& s, uint64_t word) {
  char text[20];
  std::snprintf(text, sizeof text, " %" PRIx64, word);
  s += text;
}

template <std::size_t N>
static void put(std::string& s, const VlWide<N>& word) {  // wider than 64 bits: 32-bit pieces, most significant first
  char text[12];
  std::snprintf(text, sizeof text, " %" PRIx32, word[N - 1]);
  s += text;
  for (std::size_t i = N - 1; i-- > 0;) {
    std::snprintf(text, sizeof text, "%08" PRIx32, word[i]);
    s += text;
  }
}

[[noreturn]] static void fail(const char* what) {
  std::fprintf(stderr, "harness: %s\n", what);
  std::exit(1);
}

int main(int argc, char** argv) {
#define QS_COUNT(port) +1
  constexpr int streams = 0 QS_STREAMS(QS_COUNT);
  if (argc != 5 + streams) fail("usage: harness IN_FILE OUT_FILE IN_COUNT MAX_CYCLES OUT_COUNT... (one per stream)");
  FILE* in = std::fopen(argv[1], "r");
  FILE* out = std::fopen(argv[2], "w");
  if (!in || !out) fail("cannot open the input or output file");
  const long in_count = std::atol(argv[3]);
  const uint64_t max_cycles = std::strtoull(argv[4], nullptr, 10);
  std::vector<long> out_counts;
  for (int k = 0; k < streams; ++k) out_counts.push_back(std::atol(argv[5 + k]));

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
#define QS_READY(port) top.port##_tready = 1;
  QS_STREAMS(QS_READY)
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
    uint64_t last = 0;
    std::string words;
    int stream = 0;
    // each stream in turn, as the design sends them: its words while tvalid and tready, tlast on its last
#define QS_COLLECT(port)                                                                     \
  for (long j = 0; j < out_counts[stream]; ++j) {                                            \
    for (;;) {                                                                               \
      const bool fire = top.port##_tvalid && top.port##_tready;                              \
      const uint64_t at = edges;                                                             \
      if (fire) {                                                                            \
        put(words, top.port##_tdata);                                                        \
        if (j == out_counts[stream] - 1 && !top.port##_tlast) fail("tlast missing on the last output"); \
      }                                                                                      \
      tick();                                                                                \
      if (fire) {                                                                            \
        last = at;                                                                           \
        break;                                                                               \
      }                                                                                      \
      if (at >= deadline) fail("no output after MAX_CYCLES cycles");                         \
    }                                                                                        \
  }                                                                                          \
  ++stream;
    QS_STREAMS(QS_COLLECT)
    std::fprintf(out, "%" PRIu64 "%s\n", last - first + 1, words.c_str());
    std::fflush(out);  // the runner counts finished vectors in this file while the simulation goes on
  }
  top.final();
  return 0;
}
