#include "gateway/builtin_model.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

// The file's bytes, in .rodata, aligned as GGUF's data is (the engine maps
// the copy on disk, not these).
__asm__(".section .rodata\n"
        ".balign 64\n"
        ".global headroom_builtin_model_begin\n"
        "headroom_builtin_model_begin:\n"
        ".incbin \"" HEADROOM_BUILTIN_MODEL_PATH "\"\n"
        ".global headroom_builtin_model_end\n"
        "headroom_builtin_model_end:\n"
        ".previous\n");
extern "C" const unsigned char headroom_builtin_model_begin[];
extern "C" const unsigned char headroom_builtin_model_end[];

namespace headroom::gateway {

std::span<const unsigned char> builtin_model_bytes() {
  return {headroom_builtin_model_begin, headroom_builtin_model_end};
}

Result<std::string> materialize_builtin_model(const std::string& dir) {
  const std::span<const unsigned char> bytes = builtin_model_bytes();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::unavailable("cannot create " + dir + ": " + ec.message());
  const std::string path = dir + "/" + std::string(kBuiltinModelName) + ".gguf";
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::vector<char> have((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (have.size() == bytes.size() && std::memcmp(have.data(), bytes.data(), bytes.size()) == 0) return path;
    }
  }
  // Written aside and renamed: a crash never leaves half a model.
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) return Status::unavailable("cannot write " + temp);
  }
  std::filesystem::rename(temp, path, ec);
  if (ec) return Status::unavailable("cannot rename " + temp + " to " + path + ": " + ec.message());
  return path;
}

}  // namespace headroom::gateway
