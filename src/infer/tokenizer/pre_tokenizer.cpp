#include "infer/tokenizer/pre_tokenizer.h"

#include <array>
#include <utility>

#include "infer/tokenizer/unicode.h"

namespace headroom::infer {

namespace {

using unicode::CharClass;

// A code point's class where there is one, or none past the end of the word
// being split (where a regex lookahead sees the end of the input).
enum class Cls : std::uint8_t { kNone, kOther, kLetter, kNumber, kPunctuation, kWhitespace };

constexpr char32_t kOutOfRange = 0xFFFFFFFF;

Cls to_cls(CharClass c) {
  switch (c) {
    case CharClass::kOther:
      return Cls::kOther;
    case CharClass::kLetter:
      return Cls::kLetter;
    case CharClass::kNumber:
      return Cls::kNumber;
    case CharClass::kPunctuation:
      return Cls::kPunctuation;
    case CharClass::kWhitespace:
      return Cls::kWhitespace;
  }
  return Cls::kOther;
}

char32_t ascii_lower(char32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp; }

// One word [begin, end) being split further, with the bookkeeping of its pieces.
class Splitter {
 public:
  Splitter(std::span<const char32_t> text, std::size_t begin, std::size_t end, std::vector<std::size_t>& out)
      : text_(text), end_(end), prev_end_(begin), out_(out) {}

  char32_t cp(std::size_t pos) const { return pos < end_ ? text_[pos] : kOutOfRange; }
  Cls cls(std::size_t pos) const { return pos < end_ ? to_cls(unicode::char_class(text_[pos])) : Cls::kNone; }
  std::size_t end() const { return end_; }

  // Ends the current piece at `end`; returns its length (0 adds nothing).
  std::size_t cut(std::size_t end) {
    const std::size_t length = end - prev_end_;
    if (length > 0) out_.push_back(length);
    prev_end_ = end;
    return length;
  }

 private:
  std::span<const char32_t> text_;
  std::size_t end_;
  std::size_t prev_end_;
  std::vector<std::size_t>& out_;
};

bool is_ws_letter_number(Cls c) { return c == Cls::kWhitespace || c == Cls::kLetter || c == Cls::kNumber; }

// 's|'t|'re|'ve|'m|'ll|'d at pos: the match's length, or 0. Llama 3 folds
// ASCII case ((?i:...)); GPT-2 does not.
std::size_t contraction_at(const Splitter& s, std::size_t pos, bool fold_case) {
  if (s.cp(pos) != '\'' || pos + 1 >= s.end()) return 0;
  const auto fold = [&](char32_t c) { return fold_case ? ascii_lower(c) : c; };
  const char32_t next = fold(s.cp(pos + 1));
  if (next == 's' || next == 't' || next == 'm' || next == 'd') return 2;
  if (pos + 2 >= s.end()) return 0;
  const char32_t next2 = fold(s.cp(pos + 2));
  if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l')) return 3;
  return 0;
}

// The whitespace alternatives shared by both families: \s+(?!\S) leaves the
// last whitespace character of a run to the word after it, \s+ takes the rest.
// Returns false when there is no whitespace at pos.
bool split_whitespace_run(Splitter& s, std::size_t& pos) {
  std::size_t count = 0;
  while (s.cls(pos + count) == Cls::kWhitespace) ++count;
  if (count > 1 && s.cp(pos + count) != kOutOfRange) {
    pos += count - 1;
    s.cut(pos);
    return true;
  }
  if (count > 0) {
    pos += count;
    s.cut(pos);
    return true;
  }
  return false;
}

void split_llama3(std::span<const char32_t> text, std::size_t begin, std::size_t end, std::size_t max_digits,
                  std::vector<std::size_t>& out) {
  Splitter s(text, begin, end, out);
  for (std::size_t pos = begin; pos < end;) {
    const char32_t cp = s.cp(pos);
    const Cls cls = s.cls(pos);

    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (const std::size_t n = contraction_at(s, pos, /*fold_case=*/true); n > 0) {
      pos += s.cut(pos + n);
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!(cp == '\r' || cp == '\n' || cls == Cls::kNumber)) {
      if (cls == Cls::kLetter || s.cls(pos + 1) == Cls::kLetter) {
        ++pos;
        while (s.cls(pos) == Cls::kLetter) ++pos;
        s.cut(pos);
        continue;
      }
    }
    // \p{N}{1,3} (Llama 3) or \p{N} (Qwen2)
    if (cls == Cls::kNumber) {
      std::size_t first = pos;
      while (s.cls(pos) == Cls::kNumber) {
        if (++pos - first >= max_digits) {
          s.cut(pos);
          first = pos;
        }
      }
      s.cut(pos);
      continue;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    Cls next = cp == ' ' ? s.cls(pos + 1) : cls;
    if (!is_ws_letter_number(next)) {
      pos += cp == ' ' ? 1 : 0;
      while (!is_ws_letter_number(next) && next != Cls::kNone) next = s.cls(++pos);
      while (s.cp(pos) == '\r' || s.cp(pos) == '\n') ++pos;
      s.cut(pos);
      continue;
    }
    // \s*[\r\n]+ : a whitespace run up to its last \r or \n
    std::size_t count = 0, after_last_newline = 0;
    while (s.cls(pos + count) == Cls::kWhitespace) {
      const char32_t c = s.cp(pos + count);
      if (c == '\r' || c == '\n') after_last_newline = pos + count + 1;
      ++count;
    }
    if (after_last_newline > 0) {
      pos = after_last_newline;
      s.cut(pos);
      continue;
    }
    // \s+(?!\S) | \s+
    if (split_whitespace_run(s, pos)) continue;
    s.cut(++pos);  // nothing matched: one code point (unreachable with a total class table)
  }
}

void split_gpt2(std::span<const char32_t> text, std::size_t begin, std::size_t end, std::vector<std::size_t>& out) {
  Splitter s(text, begin, end, out);
  for (std::size_t pos = begin; pos < end;) {
    const char32_t cp = s.cp(pos);
    const Cls cls = s.cls(pos);

    // 's|'t|'re|'ve|'m|'ll|'d
    if (const std::size_t n = contraction_at(s, pos, /*fold_case=*/false); n > 0) {
      pos += s.cut(pos + n);
      continue;
    }
    Cls next = cp == ' ' ? s.cls(pos + 1) : cls;
    // ' ?\p{L}+', ' ?\p{N}+'
    if (next == Cls::kLetter || next == Cls::kNumber) {
      const Cls run = next;
      pos += cp == ' ' ? 1 : 0;
      while (next == run) next = s.cls(++pos);
      s.cut(pos);
      continue;
    }
    // ' ?[^\s\p{L}\p{N}]+'
    if (!is_ws_letter_number(next) && next != Cls::kNone) {
      pos += cp == ' ' ? 1 : 0;
      while (!is_ws_letter_number(next) && next != Cls::kNone) next = s.cls(++pos);
      s.cut(pos);
      continue;
    }
    // \s+(?!\S) | \s+
    if (split_whitespace_run(s, pos)) continue;
    s.cut(++pos);
  }
}

// X+ for a class test X: each maximal run of matching code points is a word,
// and so is each stretch between runs.
template <typename Pred>
void split_runs(std::span<const char32_t> text, std::size_t begin, std::size_t end, Pred matches,
                std::vector<std::size_t>& out) {
  std::size_t pos = begin;
  while (pos < end) {
    const bool in_run = matches(text[pos]);
    std::size_t stop = pos + 1;
    while (stop < end && matches(text[stop]) == in_run) ++stop;
    out.push_back(stop - pos);
    pos = stop;
  }
}

// X for a class test X: each matching code point is a word, and so is each
// stretch between them.
template <typename Pred>
void split_each(std::span<const char32_t> text, std::size_t begin, std::size_t end, Pred matches,
                std::vector<std::size_t>& out) {
  std::size_t gap = begin;
  for (std::size_t pos = begin; pos < end; ++pos) {
    if (!matches(text[pos])) continue;
    if (pos > gap) out.push_back(pos - gap);
    out.push_back(1);
    gap = pos + 1;
  }
  if (end > gap) out.push_back(end - gap);
}

// [0-9][0-9][0-9], searched left to right: each match is a word, and so is
// each stretch between matches (a run of four digits leaves its fourth to
// the text after it).
void split_digit_triples(std::span<const char32_t> text, std::size_t begin, std::size_t end,
                         std::vector<std::size_t>& out) {
  const auto digit = [&](std::size_t p) { return text[p] >= '0' && text[p] <= '9'; };
  std::size_t gap = begin;
  std::size_t pos = begin;
  while (pos + 3 <= end) {
    if (digit(pos) && digit(pos + 1) && digit(pos + 2)) {
      if (pos > gap) out.push_back(pos - gap);
      out.push_back(3);
      pos += 3;
      gap = pos;
    } else {
      ++pos;
    }
  }
  if (end > gap) out.push_back(end - gap);
}

bool is_number(char32_t cp) { return unicode::char_class(cp) == CharClass::kNumber; }

// [\p{P}\$\+<=>\^~\|]
bool is_default_punctuation(char32_t cp) {
  switch (cp) {
    case '$':
    case '+':
    case '<':
    case '=':
    case '>':
    case '^':
    case '~':
    case '|':
      return true;
    default:
      return unicode::char_class(cp) == CharClass::kPunctuation;
  }
}

// Runs `stage` over each current word, replacing the words with its pieces.
template <typename Stage>
void apply(std::span<const char32_t> text, std::vector<std::size_t>& words, Stage stage) {
  std::vector<std::size_t> next;
  next.reserve(words.size());
  std::size_t begin = 0;
  for (const std::size_t length : words) {
    stage(text, begin, begin + length, next);
    begin += length;
  }
  words = std::move(next);
}

}  // namespace

std::optional<PreTokenizer> pre_tokenizer_from_name(std::string_view name) {
  struct Entry {
    std::string_view name;
    PreTokenizer pre;
  };
  // llama.cpp's llama-vocab.cpp maps these names to the same expressions.
  static constexpr std::array kNames = {
      Entry{"", PreTokenizer::kDefault},         Entry{"default", PreTokenizer::kDefault},
      Entry{"llama3", PreTokenizer::kLlama3},    Entry{"llama-v3", PreTokenizer::kLlama3},
      Entry{"llama-bpe", PreTokenizer::kLlama3}, Entry{"falcon3", PreTokenizer::kLlama3},
      Entry{"falcon-h1", PreTokenizer::kLlama3}, Entry{"pixtral", PreTokenizer::kLlama3},
      Entry{"qwen2", PreTokenizer::kQwen2},      Entry{"deepseek-r1-qwen", PreTokenizer::kQwen2},
      Entry{"megrez", PreTokenizer::kQwen2},     Entry{"smollm", PreTokenizer::kSmollm},
      Entry{"starcoder", PreTokenizer::kSmollm}, Entry{"refact", PreTokenizer::kSmollm},
      Entry{"codeshell", PreTokenizer::kSmollm}, Entry{"gpt-2", PreTokenizer::kGpt2},
      Entry{"phi-2", PreTokenizer::kGpt2},       Entry{"mpt", PreTokenizer::kGpt2},
      Entry{"olmo", PreTokenizer::kGpt2},
  };
  for (const Entry& entry : kNames) {
    if (entry.name == name) return entry.pre;
  }
  return std::nullopt;
}

std::string_view pre_tokenizer_name(PreTokenizer pre) {
  switch (pre) {
    case PreTokenizer::kDefault:
      return "default";
    case PreTokenizer::kGpt2:
      return "gpt2";
    case PreTokenizer::kLlama3:
      return "llama3";
    case PreTokenizer::kQwen2:
      return "qwen2";
    case PreTokenizer::kSmollm:
      return "smollm";
  }
  return "default";
}

bool pre_tokenizer_ignores_merges(PreTokenizer pre) { return pre == PreTokenizer::kLlama3; }

std::vector<std::size_t> pre_tokenize(PreTokenizer pre, std::span<const char32_t> text) {
  std::vector<std::size_t> words;
  if (text.empty()) return words;
  words.push_back(text.size());
  switch (pre) {
    case PreTokenizer::kLlama3:
    case PreTokenizer::kQwen2: {
      const std::size_t max_digits = pre == PreTokenizer::kLlama3 ? 3 : 1;
      apply(text, words,
            [max_digits](auto t, std::size_t b, std::size_t e, auto& out) { split_llama3(t, b, e, max_digits, out); });
      break;
    }
    case PreTokenizer::kGpt2:
      apply(text, words, split_gpt2);
      break;
    case PreTokenizer::kSmollm:
      apply(text, words, [](auto t, std::size_t b, std::size_t e, auto& out) { split_each(t, b, e, is_number, out); });
      apply(text, words, split_gpt2);
      break;
    case PreTokenizer::kDefault:
      apply(text, words,
            [](auto t, std::size_t b, std::size_t e, auto& out) { split_runs(t, b, e, is_default_punctuation, out); });
      apply(text, words, split_gpt2);
      apply(text, words, [](auto t, std::size_t b, std::size_t e, auto& out) { split_runs(t, b, e, is_number, out); });
      apply(text, words, split_digit_triples);
      break;
  }
  return words;
}

}  // namespace headroom::infer
