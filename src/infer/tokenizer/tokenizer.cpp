#include "infer/tokenizer/tokenizer.h"

#include <algorithm>
#include <string>
#include <utility>

#include "common/text.h"
#include "infer/tokenizer/tokenizer_impl.h"
#include "infer/tokenizer/unicode.h"

namespace headroom::infer {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// A token's text as an error message may quote it: valid UTF-8, not too long.
std::string quote(std::string_view text) {
  constexpr std::size_t kQuoteBytes = 64;
  std::string out = "'";
  out.append(to_valid_utf8(text.substr(0, kQuoteBytes)));
  if (text.size() > kQuoteBytes) out.append("...");
  out.push_back('\'');
  return out;
}

std::string id_string(std::size_t id) { return std::to_string(id); }

// "<0xXX>" (either case) -> the byte.
std::optional<std::uint8_t> parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return std::nullopt;
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int high = hex(text[3]), low = hex(text[4]);
  if (high < 0 || low < 0) return std::nullopt;
  return static_cast<std::uint8_t>(high * 16 + low);
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (true) {
    const std::size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

// What a token renders as with RenderSpecial::kYes (see tokenizer.h).
std::string render_piece(const Tokenizer::Impl& impl, TokenId id) {
  const std::string& text = impl.vocab.tokens[id];
  switch (impl.type(id)) {
    case TokenType::kControl:
    case TokenType::kUnknown:
    case TokenType::kUserDefined:
      return text;
    case TokenType::kUnused:
      return "";
    case TokenType::kByte:
      return std::string(1, static_cast<char>(*parse_byte_token(text)));
    case TokenType::kNormal:
      break;
  }
  if (impl.vocab.kind == VocabKind::kSpm) return replace_all(text, kSpaceMark, " ");
  std::string out;
  for (const char32_t cp : unicode::to_code_points(text)) {
    if (const std::optional<std::uint8_t> byte = unicode::char_to_byte(cp)) {
      out.push_back(static_cast<char>(*byte));
    } else {
      unicode::append_utf8(out, cp);
    }
  }
  return out;
}

Status check_special_id(const std::optional<TokenId>& id, std::string_view name, std::size_t n_tokens) {
  if (id && (*id < 0 || static_cast<std::size_t>(*id) >= n_tokens)) {
    return Status::invalid_argument(std::string(name) + " token id " + std::to_string(*id) +
                                    " is outside the vocabulary of " + id_string(n_tokens) + " tokens");
  }
  return Status::ok();
}

Status build_merges(Tokenizer::Impl& impl) {
  const std::vector<std::string>& merges = impl.vocab.merges;
  if (merges.size() > kVocabMergesMax) {
    return Status::invalid_argument(id_string(merges.size()) + " merges are past the limit of " +
                                    id_string(kVocabMergesMax));
  }
  impl.merges.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string_view merge = merges[rank];
    // As llama.cpp: the first space after the first byte separates the sides.
    const std::size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string_view::npos;
    if (space == std::string_view::npos || space + 1 == merge.size()) {
      return Status::invalid_argument("merge " + id_string(rank) + " " + quote(merge) + " is not 'left right'");
    }
    const std::string_view left = merge.substr(0, space), right = merge.substr(space + 1);
    const TokenId left_id = impl.lookup(left), right_id = impl.lookup(right);
    const TokenId result = impl.lookup(std::string(left) + std::string(right));
    if (left_id == kNoToken || right_id == kNoToken || result == kNoToken) {
      return Status::invalid_argument("merge " + id_string(rank) + " " + quote(merge) +
                                      " joins texts that are not all tokens");
    }
    impl.merges.try_emplace(Tokenizer::Impl::merge_key(left_id, right_id),
                            Tokenizer::Impl::Merge{static_cast<std::int32_t>(rank), result});
  }
  return Status::ok();
}

}  // namespace

Result<Tokenizer> Tokenizer::create(Vocabulary vocabulary) {
  auto impl = std::make_shared<Impl>();
  impl->vocab = std::move(vocabulary);
  const Vocabulary& vocab = impl->vocab;
  const std::size_t n = vocab.tokens.size();

  if (n == 0) return Status::invalid_argument("the vocabulary has no tokens");
  if (n > kVocabTokensMax) {
    return Status::invalid_argument("vocabulary of " + id_string(n) + " tokens is past the limit of " +
                                    id_string(kVocabTokensMax));
  }
  if (!vocab.scores.empty() && vocab.scores.size() != n) {
    return Status::invalid_argument(id_string(vocab.scores.size()) + " scores for " + id_string(n) + " tokens");
  }
  if (!vocab.types.empty() && vocab.types.size() != n) {
    return Status::invalid_argument(id_string(vocab.types.size()) + " token types for " + id_string(n) + " tokens");
  }
  HR_RETURN_IF_ERROR(check_special_id(vocab.bos, "bos", n));
  HR_RETURN_IF_ERROR(check_special_id(vocab.eos, "eos", n));
  HR_RETURN_IF_ERROR(check_special_id(vocab.unk, "unk", n));
  HR_RETURN_IF_ERROR(check_special_id(vocab.pad, "pad", n));
  if (vocab.add_bos && !vocab.bos) return Status::invalid_argument("add_bos is set but there is no bos token");
  if (vocab.add_eos && !vocab.eos) return Status::invalid_argument("add_eos is set but there is no eos token");
  if (vocab.kind == VocabKind::kBpe) {
    const std::optional<PreTokenizer> pre = pre_tokenizer_from_name(vocab.pre);
    if (!pre) return Status::invalid_argument("pre-tokenizer " + quote(vocab.pre) + " is not supported");
    impl->pre = *pre;
  }

  impl->ids.reserve(n);
  for (std::size_t id = 0; id < n; ++id) {
    const std::string& text = vocab.tokens[id];
    if (text.size() > kTokenBytesMax) {
      return Status::invalid_argument("token " + id_string(id) + " is " + id_string(text.size()) +
                                      " bytes, past the limit of " + id_string(kTokenBytesMax));
    }
    const auto raw_type = static_cast<std::int32_t>(impl->type(static_cast<TokenId>(id)));
    if (raw_type < static_cast<std::int32_t>(TokenType::kNormal) ||
        raw_type > static_cast<std::int32_t>(TokenType::kByte)) {
      return Status::invalid_argument("token " + id_string(id) + " has type " + std::to_string(raw_type) +
                                      ", not one of 1..6");
    }
    if (impl->type(static_cast<TokenId>(id)) == TokenType::kByte && !parse_byte_token(text)) {
      return Status::invalid_argument("token " + id_string(id) + " " + quote(text) +
                                      " has type byte but is not <0xXX>");
    }
    if (text.empty()) continue;  // never matched, renders as nothing
    auto [it, inserted] = impl->ids.try_emplace(text, static_cast<TokenId>(id));
    if (!inserted) {
      return Status::invalid_argument("token " + quote(text) + " appears twice, as ids " + std::to_string(it->second) +
                                      " and " + id_string(id));
    }
  }

  impl->pieces.reserve(n);
  impl->hidden.reserve(n);
  for (std::size_t id = 0; id < n; ++id) {
    const auto token = static_cast<TokenId>(id);
    const TokenType type = impl->type(token);
    impl->pieces.push_back(render_piece(*impl, token));
    impl->hidden.push_back(type == TokenType::kControl || type == TokenType::kUnknown);
    if ((type == TokenType::kControl || type == TokenType::kUnknown || type == TokenType::kUserDefined) &&
        !vocab.tokens[id].empty()) {
      impl->specials.push_back(token);
    }
  }
  std::stable_sort(impl->specials.begin(), impl->specials.end(),
                   [&](TokenId a, TokenId b) { return vocab.tokens[a].size() > vocab.tokens[b].size(); });

  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int byte = 0; byte < 256; ++byte) {
    const std::string hex = std::string("<0x") + kHex[byte >> 4] + kHex[byte & 15] + ">";
    TokenId id = impl->lookup(hex);
    if (id == kNoToken) id = impl->lookup(std::string(1, static_cast<char>(byte)));
    impl->byte_tokens[byte] = id;

    std::string byte_char;
    unicode::append_utf8(byte_char, unicode::byte_to_char(static_cast<std::uint8_t>(byte)));
    impl->byte_char_tokens[byte] = impl->lookup(byte_char);
  }

  if (vocab.kind == VocabKind::kBpe) HR_RETURN_IF_ERROR(build_merges(*impl));
  return Tokenizer(std::move(impl));
}

namespace {

// A stretch of the text [begin, end), or a special token cut out of it.
struct Fragment {
  std::size_t begin;
  std::size_t end;
  TokenId token;  // kNoToken for text
};

// Cuts the special tokens out of the text, longest first, as llama.cpp's
// tokenizer_st_partition does.
std::vector<Fragment> partition(const Tokenizer::Impl& impl, std::string_view text, ParseSpecial parse_special) {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({0, text.size(), kNoToken});
  std::vector<Fragment> next;
  for (const TokenId special : impl.specials) {
    const TokenType type = impl.type(special);
    if (parse_special == ParseSpecial::kNo && (type == TokenType::kControl || type == TokenType::kUnknown)) continue;
    const std::string_view needle = impl.vocab.tokens[special];
    if (text.find(needle) == std::string_view::npos) continue;  // the common case, in one scan

    next.clear();
    for (const Fragment& fragment : fragments) {
      if (fragment.token != kNoToken) {
        next.push_back(fragment);
        continue;
      }
      const std::string_view stretch = text.substr(0, fragment.end);
      std::size_t pos = fragment.begin;
      while (true) {
        const std::size_t hit = stretch.find(needle, pos);
        if (hit == std::string_view::npos) break;
        if (hit > pos) next.push_back({pos, hit, kNoToken});
        next.push_back({hit, hit + needle.size(), special});
        pos = hit + needle.size();
      }
      if (pos < fragment.end) next.push_back({pos, fragment.end, kNoToken});
    }
    fragments.swap(next);
  }
  return fragments;
}

}  // namespace

Result<std::vector<TokenId>> Tokenizer::encode(std::string_view text, AddSpecial add_special,
                                               ParseSpecial parse_special) const {
  if (text.size() > kEncodeTextBytesMax) {
    return Status::payload_too_large("text of " + id_string(text.size()) + " bytes is past the tokenizer's limit of " +
                                     id_string(kEncodeTextBytesMax));
  }
  const Impl& impl = *impl_;
  const Vocabulary& vocab = impl.vocab;
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special == AddSpecial::kYes && vocab.add_bos) out.push_back(*vocab.bos);

  bool after_special = true;  // the text's start counts as following a special token
  std::string escaped;
  for (const Fragment& fragment : partition(impl, text, parse_special)) {
    if (fragment.token != kNoToken) {
      out.push_back(fragment.token);
      after_special = true;
      continue;
    }
    const std::string_view stretch = text.substr(fragment.begin, fragment.end - fragment.begin);
    if (vocab.kind == VocabKind::kSpm) {
      escaped.clear();
      if (vocab.add_space_prefix && after_special) escaped.append(kSpaceMark);
      for (const char c : stretch) {
        if (c == ' ') {
          escaped.append(kSpaceMark);
        } else {
          escaped.push_back(c);
        }
      }
      HR_RETURN_IF_ERROR(spm_encode(impl, escaped, out));
    } else {
      HR_RETURN_IF_ERROR(bpe_encode(impl, stretch, out));
    }
    after_special = false;
  }

  if (add_special == AddSpecial::kYes && vocab.add_eos) out.push_back(*vocab.eos);
  return out;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, RenderSpecial render) const {
  const Impl& impl = *impl_;
  std::string out;
  bool strip_space = impl.vocab.kind == VocabKind::kSpm && impl.vocab.add_space_prefix;
  for (const TokenId id : ids) {
    if (!contains(id)) continue;
    std::string_view piece = token_to_piece(id, render);
    if (strip_space && !impl.hidden[id]) {
      if (!piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
      strip_space = false;
    }
    out.append(piece);
  }
  return out;
}

std::string_view Tokenizer::token_to_piece(TokenId id, RenderSpecial render) const {
  if (!contains(id)) return {};
  if (render == RenderSpecial::kNo && impl_->hidden[id]) return {};
  return impl_->pieces[id];
}

std::size_t Tokenizer::n_tokens() const { return impl_->vocab.tokens.size(); }

std::optional<TokenId> Tokenizer::find(std::string_view text) const {
  const TokenId id = impl_->lookup(text);
  if (id == kNoToken) return std::nullopt;
  return id;
}

TokenType Tokenizer::token_type(TokenId id) const {
  ASSERT(contains(id));
  return impl_->type(id);
}

const std::string& Tokenizer::token_text(TokenId id) const {
  ASSERT(contains(id));
  return impl_->vocab.tokens[id];
}

VocabKind Tokenizer::kind() const { return impl_->vocab.kind; }
PreTokenizer Tokenizer::pre_tokenizer() const { return impl_->pre; }
std::optional<TokenId> Tokenizer::bos() const { return impl_->vocab.bos; }
std::optional<TokenId> Tokenizer::eos() const { return impl_->vocab.eos; }
std::optional<TokenId> Tokenizer::unk() const { return impl_->vocab.unk; }
std::optional<TokenId> Tokenizer::pad() const { return impl_->vocab.pad; }
const Vocabulary& Tokenizer::vocabulary() const { return impl_->vocab; }

}  // namespace headroom::infer
