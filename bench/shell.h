// Running a shell command from a benchmark and reading what it prints.
#pragma once

#include <cstdio>
#include <string>

namespace headroom::bench {

// The command's standard output, less its trailing newlines.
inline std::string shell_output(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return {};
  std::string out;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, p) != nullptr) out += buffer;
  pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace headroom::bench
