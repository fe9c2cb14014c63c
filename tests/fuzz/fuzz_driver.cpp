// A small stand-in for libFuzzer's driver, so that g++ builds can fuzz in
// `make test`: runs every corpus file, then mutates corpus entries at random
// for a bounded time. Deterministic for a given --seed.
//
//   request_fuzz [--seconds N] [--seed S] [--runs N] CORPUS_DIR...
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

// Tokens that tend to reach deep paths in JSON and HTTP handling.
const char* const kTokens[] = {"{", "}", "[", "]", "\"", ":", ",", "null", "true", "false", "-0", "1e999",
                               "\\u0000", "\\ud800", "\xff", "\xc3\xa9", "\"name\"", "\"kind\"", "\"scopes\"",
                               "\"expires_at\"", "internal", "external", "admin", "2026-11-26T06:21:42Z",
                               "/v1/tenants", "/v1/keys/", "/rotate", "POST ", "GET ", "DELETE ", "\n", "$T", "$K",
                               "/v1/tenants/$T/keys", "/v1/keys/$K"};

std::string mutate(std::string input, std::mt19937_64& rng, const std::vector<std::string>& corpus) {
  std::uniform_int_distribution<int> op(0, 6);
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < rounds; ++i) {
    std::size_t pos = input.empty() ? 0 : rng() % (input.size() + 1);
    switch (op(rng)) {
      case 0:  // flip a bit
        if (!input.empty()) input[pos % input.size()] ^= static_cast<char>(1 << (rng() % 8));
        break;
      case 1:  // insert a random byte
        input.insert(pos, 1, static_cast<char>(rng() % 256));
        break;
      case 2:  // delete a span
        if (!input.empty()) input.erase(pos % input.size(), 1 + rng() % 8);
        break;
      case 3:  // insert a token
        input.insert(pos, kTokens[rng() % std::size(kTokens)]);
        break;
      case 4:  // duplicate a span
        if (!input.empty()) {
          std::size_t from = rng() % input.size();
          input.insert(pos, input.substr(from, 1 + rng() % 16));
        }
        break;
      case 5:  // splice with another corpus entry
        if (!corpus.empty()) {
          const std::string& other = corpus[rng() % corpus.size()];
          input = input.substr(0, pos) + other.substr(std::min(other.size(), pos));
        }
        break;
      case 6:  // truncate
        input.resize(pos);
        break;
    }
  }
  if (input.size() > 64 * 1024) input.resize(64 * 1024);
  return input;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  std::uint64_t seed = 1;
  long long max_runs = -1;
  std::vector<std::string> corpus;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (arg == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--runs" && i + 1 < argc) max_runs = std::atoll(argv[++i]);
    else {
      std::error_code ec;
      for (auto& entry : std::filesystem::recursive_directory_iterator(arg, ec)) {
        if (!entry.is_regular_file()) continue;
        std::ifstream in(entry.path(), std::ios::binary);
        corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      if (ec) {
        std::fprintf(stderr, "cannot read corpus %s: %s\n", arg.c_str(), ec.message().c_str());
        return 2;
      }
    }
  }
  if (corpus.empty()) corpus.emplace_back();
  for (const auto& input : corpus) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
  }
  std::mt19937_64 rng(seed);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  long long runs = 0;
  while (std::chrono::steady_clock::now() < deadline && (max_runs < 0 || runs < max_runs)) {
    std::string input = mutate(corpus[rng() % corpus.size()], rng, corpus);
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
    ++runs;
  }
  std::printf("fuzz: %zu corpus inputs and %lld mutated inputs in %.0f s, no failure (seed %llu)\n", corpus.size(),
              runs, seconds, static_cast<unsigned long long>(seed));
  return 0;
}
