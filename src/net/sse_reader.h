// Reading server-sent events (the OpenAI API's streams) as they arrive.
#pragma once

#include <string>
#include <string_view>

namespace headroom::net {

// Splits a server-sent event stream into the payloads of its data lines.
// Feed it the body as it arrives, in any pieces; it calls `on_data` with
// each payload ("[DONE]" included) once its line is complete.
class SseReader {
 public:
  template <typename OnData>
  void feed(std::string_view chunk, OnData&& on_data) {
    buffer_.append(chunk);
    std::size_t start = 0;
    for (std::size_t end; (end = buffer_.find('\n', start)) != std::string::npos; start = end + 1) {
      std::string_view line(buffer_.data() + start, end - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.starts_with("data:")) {
        line.remove_prefix(5);
        if (line.starts_with(' ')) line.remove_prefix(1);
        on_data(line);
      }
    }
    buffer_.erase(0, start);
  }

 private:
  std::string buffer_;
};

}  // namespace headroom::net
