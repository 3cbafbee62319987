// The compiled engine's streaming testbench (qnnfab.sim.compiled): a template.
//
// qnnfab.sim.compiled.testbench_source fills in every placeholder (an
// upper-case name between two at signs: the port names and sizes of one
// accelerator) by plain text substitution; the result is built with Verilator
// together with the accelerator's Verilog. What it does each cycle and the
// files it reads and writes: see the docstring of qnnfab.sim.compiled.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "verilated.h"

// Ports wider than 64 bits are arrays of 32-bit words in Verilator.
#define IN_WIDE @IN_WIDE@
#define OUT_WIDE @OUT_WIDE@
#define HAS_IN_LAST @HAS_IN_LAST@
#define HAS_OUT_LAST @HAS_OUT_LAST@
#define HAS_LABEL @HAS_LABEL@

static const int in_bytes = @IN_BYTES@;
static const int out_bytes = @OUT_BYTES@;
static const uint64_t in_words_per_frame = @IN_WORDS_PER_FRAME@;

static uint64_t rng_state;
static uint64_t next_rand() {  // splitmix64
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static bool chance(uint64_t threshold) { return threshold == UINT64_MAX || next_rand() < threshold; }
static uint64_t le64(const uint8_t* b, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n && i < 8; ++i) v |= (uint64_t)b[i] << (8 * i);
    return v;
}
static uint32_t le32(const uint8_t* b, int n) { return n <= 0 ? 0 : (uint32_t)le64(b, n < 4 ? n : 4); }
static void put64(uint8_t* b, int n, uint64_t v) { for (int i = 0; i < n && i < 8; ++i) b[i] = (uint8_t)(v >> (8 * i)); }
static void put32(uint8_t* b, int n, uint32_t v) { for (int i = 0; i < n && i < 4; ++i) b[i] = (uint8_t)(v >> (8 * i)); }

// The models and how one cycle settles and clocks them: make_models(), settle(cycle),
// clock_edge(), end_models(); `top` is the model with the accelerator's ports.
@MODELS@

// The watched handshakes inside the design (none when n_watch is 0): watch_valid(k),
// watch_ready(k) and watch_names[k] of stream k; watch_moved(): a transfer on any of them
// this cycle; occupancy_pairs: the streams (into, out of) a FIFO.
@WATCH@

static void set_input(const uint8_t* w) {
    const int nb = in_bytes;
#if IN_WIDE
    for (int k = 0; k < (nb + 3) / 4; ++k) top->@IN_DATA@[k] = le32(w + 4 * k, nb - 4 * k);
#else
    top->@IN_DATA@ = le64(w, nb);
#endif
}

static void get_output(uint8_t* w) {
    const int nb = out_bytes;
    std::memset(w, 0, nb);
#if OUT_WIDE
    for (int k = 0; k < (nb + 3) / 4; ++k) put32(w + 4 * k, nb - 4 * k, top->@OUT_DATA@[k]);
#else
    put64(w, nb, (uint64_t)top->@OUT_DATA@);
#endif
}

static int fail(uint64_t cycle, const char* what) {
    std::fprintf(stderr, "cycle %llu: %s\n", (unsigned long long)cycle, what);
    return 3;
}

int main(int argc, char** argv) {
    if (argc != 11) {
        std::fprintf(stderr, "usage: %s inputs.bin outputs.bin labels.bin words_per_frame_out seed "
                     "valid_threshold ready_threshold check_handshake max_cycles stall_limit\n", argv[0]);
        return 2;
    }
    FILE* fin = std::fopen(argv[1], "rb");
    if (!fin) { std::perror(argv[1]); return 2; }
    std::vector<uint8_t> in;
    uint8_t buf[65536];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, fin)) > 0) in.insert(in.end(), buf, buf + got);
    std::fclose(fin);
    const size_t in_words = in.size() / in_bytes;
    const uint64_t out_per_frame = std::strtoull(argv[4], nullptr, 10);
    rng_state = std::strtoull(argv[5], nullptr, 10);
    const uint64_t valid_thr = std::strtoull(argv[6], nullptr, 10);
    const uint64_t ready_thr = std::strtoull(argv[7], nullptr, 10);
    const bool check_hs = std::atoi(argv[8]) != 0;
    const uint64_t max_cycles = std::strtoull(argv[9], nullptr, 10);
    const uint64_t stall_limit = std::strtoull(argv[10], nullptr, 10);  // 0: no progress watch
    FILE* fout = std::fopen(argv[2], "wb");
    FILE* flab = std::fopen(argv[3], "wb");
    if (!fout || !flab) { std::perror("output"); return 2; }

    Verilated::randReset(0);
    make_models();
    top->@RESET@ = @RESET_ACTIVE@;
    top->@IN_VALID@ = 0;
    top->@OUT_READY@ = 0;
    for (int k = 0; k < 2; ++k) { settle(0); clock_edge(); }
    top->@RESET@ = !@RESET_ACTIVE@;
    settle(0);

    std::vector<uint8_t> word(out_bytes), held(out_bytes), probe(out_bytes);
    size_t pos = 0;
    bool offering = false, holding = false;
    uint64_t out_words = 0, labels = 0;
    const uint64_t expected_out = (in_words / in_words_per_frame) * out_per_frame;
    uint64_t cycle = 0, tail = 0;
    int rc = 0;
    // progress watch: cycles since the last transfer anywhere; words in each watched FIFO
    std::vector<int64_t> held_words(n_pairs > 0 ? n_pairs : 1, 0), occupancy(n_pairs > 0 ? n_pairs : 1, 0);
    uint64_t quiet = 0, last_cycle = 0;
    bool any_transfer = false;
    while (true) {
        // drive (clock low): a new input word, and this cycle's ready
        if (!offering && pos < in_words && chance(valid_thr)) {
            set_input(&in[pos * in_bytes]);
#if HAS_IN_LAST
            top->@IN_LAST@ = (pos + 1) % in_words_per_frame == 0;
#endif
            offering = true;
        }
        top->@IN_VALID@ = offering;
        const bool ready = out_words < expected_out && chance(ready_thr);
        if (check_hs) {  // valid and payload must not depend on ready
            top->@OUT_READY@ = !ready;
            settle(cycle);
            const bool v = top->@OUT_VALID@;
            if (v) get_output(probe.data());
            top->@OUT_READY@ = ready;
            settle(cycle);
            if (v != (bool)top->@OUT_VALID@) { rc = fail(cycle, "output valid depends on ready"); break; }
            if (v) {
                get_output(word.data());
                if (word != probe) { rc = fail(cycle, "output payload depends on ready"); break; }
            }
        } else {
            top->@OUT_READY@ = ready;
            settle(cycle);
        }
        // sample (the transfers of the coming rising edge)
        const bool in_fire = offering && top->@IN_READY@;
        const bool out_valid = top->@OUT_VALID@;
        if (holding) {
            if (!out_valid) { rc = fail(cycle, "output valid dropped before the offered word was taken"); break; }
            get_output(word.data());
            if (word != held) { rc = fail(cycle, "output payload changed while stalled"); break; }
        }
        if (out_valid) {
            if (out_words >= expected_out) { rc = fail(cycle, "an output word after the last frame's"); break; }
            get_output(word.data());
            if (ready) {
#if HAS_OUT_LAST
                if (((bool)top->@OUT_LAST@) != ((out_words + 1) % out_per_frame == 0)) {
                    rc = fail(cycle, "output last is not on the last word of a frame"); break;
                }
#endif
                uint64_t c = cycle;
                std::fwrite(&c, 8, 1, fout);
                std::fwrite(word.data(), 1, word.size(), fout);
                ++out_words;
                holding = false;
            } else {
                held = word;
                holding = true;
            }
        } else {
            holding = false;
        }
#if HAS_LABEL
        if (top->@LABEL_VALID@) {
            if (labels >= out_words / out_per_frame) { rc = fail(cycle, "a label before its frame's last word"); break; }
            uint64_t c = cycle, l = (uint64_t)top->@LABEL@;
            std::fwrite(&c, 8, 1, flab);
            std::fwrite(&l, 8, 1, flab);
            ++labels;
        }
#endif
        const bool inside = watch_moved();
        if (inside) {
            for (int p = 0; p < n_pairs; ++p) {
                const int a = occupancy_pairs[p][0], b = occupancy_pairs[p][1];
                held_words[p] += (watch_valid(a) && watch_ready(a)) - (watch_valid(b) && watch_ready(b));
                if (held_words[p] > occupancy[p]) occupancy[p] = held_words[p];
            }
        }
        if (inside || in_fire || (out_valid && ready)) { quiet = 0; last_cycle = cycle; any_transfer = true; }
        else ++quiet;
        if (stall_limit && quiet >= stall_limit) {  // one line: what holds a word nobody takes, what waits
            std::string full, empty;
            int waiting = 0;
            for (int k = 0; k < n_watch; ++k) {
                const bool v = watch_valid(k), r = watch_ready(k);
                if (v && !r) full += std::string(full.empty() ? "" : ", ") + watch_names[k];
                if (!v && r) { if (waiting++ < 4) empty += std::string(empty.empty() ? "" : ", ") + watch_names[k]; }
            }
            std::fprintf(stderr, "cycle %llu: deadlock: no progress for %llu cycles: valid without ready "
                         "(holding a word nobody takes) on %s; ready without valid on %d stream(s) (%s%s); "
                         "%s %llu\n", (unsigned long long)cycle,
                         (unsigned long long)quiet, full.empty() ? "none" : full.c_str(), waiting,
                         empty.empty() ? "none" : empty.c_str(), waiting > 4 ? ", ..." : "",
                         any_transfer ? "last transfer at cycle" : "no transfer since cycle", (unsigned long long)last_cycle);
            rc = 4;
            break;
        }
        clock_edge();
        if (in_fire) { offering = false; ++pos; }
        ++cycle;
        if (out_words >= expected_out && pos >= in_words) {
            if (++tail > 32) break;  // watch a few more cycles: nothing may follow
        }
        if (cycle >= max_cycles) { rc = fail(cycle, "timeout waiting for output words"); break; }
    }
    std::fclose(fout);
    std::fclose(flab);
    std::printf("cycles %llu out_words %llu labels %llu\n", (unsigned long long)cycle,
                (unsigned long long)out_words, (unsigned long long)labels);
    for (int p = 0; p < n_pairs; ++p) std::printf("occupancy %d %lld\n", p, (long long)occupancy[p]);
    end_models();
    return rc;
}
