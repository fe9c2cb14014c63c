#include "infer/tokenizer/detokenizer.h"

#include "common/check.h"
#include "infer/tokenizer/unicode.h"

namespace headroom::infer {

std::string Detokenizer::push(TokenId id) {
  const std::string_view piece = tokenizer_->token_to_piece(id, render_);
  if (piece.empty()) return {};
  std::string bytes = std::move(pending_);
  pending_.clear();
  bytes.append(piece);

  std::string out;
  out.reserve(bytes.size());
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const unicode::Utf8Sequence seq = unicode::decode_utf8(bytes, pos);
    if (seq.status == unicode::Utf8Status::kValid) {
      out.append(bytes, pos, seq.length);
      pos += seq.length;
    } else if (seq.status == unicode::Utf8Status::kTruncated) {
      pending_.assign(bytes, pos, std::string::npos);  // the rest may come with the next token
      break;
    } else {
      unicode::append_utf8(out, unicode::kReplacement);
      pos += 1;
    }
  }
  ASSERT(pending_.size() < 4);
  return out;
}

std::string Detokenizer::finish() {
  std::string out;
  for (const char32_t cp : unicode::to_code_points(pending_)) unicode::append_utf8(out, cp);
  pending_.clear();
  return out;
}

}  // namespace headroom::infer
