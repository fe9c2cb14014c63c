#include "infer/sampling/chat_template.h"

#include <fmt/format.h>

namespace headroom::infer {
namespace {

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// Whether text holds part in single or in double quotes: a Jinja string
// literal. "'[INST] '" and "\"[INST] \"" both say the template emits "[INST] ".
bool has_literal(std::string_view text, std::string_view part) {
  return contains(text, fmt::format("'{}'", part)) || contains(text, fmt::format("\"{}\"", part));
}

// Python's str.isspace(), which Jinja's trim and str.strip() use.
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// The code point of the well-formed UTF-8 sequence text[at, at + length), or
// none: invalid bytes never count as space.
std::optional<char32_t> decode(std::string_view text, std::size_t at, std::size_t length) {
  const auto lead = static_cast<unsigned char>(text[at]);
  if (length == 1) return lead < 0x80 ? std::optional<char32_t>(lead) : std::nullopt;
  const std::size_t expected = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0;
  if (expected != length || at + length > text.size()) return std::nullopt;
  char32_t c = lead & (0x7F >> length);
  for (std::size_t i = 1; i < length; ++i) {
    const auto byte = static_cast<unsigned char>(text[at + i]);
    if ((byte & 0xC0) != 0x80) return std::nullopt;
    c = (c << 6) | (byte & 0x3F);
  }
  constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < kSmallest[length]) return std::nullopt;  // overlong
  return c;
}

std::size_t utf8_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
}

// Python's str.strip() on UTF-8 text: Jinja's `trim` and `.strip()`.
std::string_view strip(std::string_view text) {
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t length = utf8_length(static_cast<unsigned char>(text[begin]));
    const auto c = decode(text, begin, length);
    if (!c || !is_python_space(*c)) break;
    begin += length;
  }
  std::size_t end = text.size();
  while (end > begin) {
    std::size_t start = end - 1;
    while (start > begin && end - start < 4 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    const auto c = decode(text, start, end - start);
    if (!c || !is_python_space(*c)) break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

// A ChatML template's default system prompt: the literal text in
// '<|im_start|>system\n...<|im_end|>' (Qwen2's "You are a helpful
// assistant."), emitted when the conversation has no system message.
std::string default_chatml_system(std::string_view tmpl) {
  constexpr std::string_view kOpen = "<|im_start|>system";
  constexpr std::string_view kClose = "<|im_end|>";
  for (std::size_t at = tmpl.find(kOpen); at != std::string_view::npos; at = tmpl.find(kOpen, at + 1)) {
    std::size_t begin = at + kOpen.size();
    if (tmpl.substr(begin, 2) == "\\n") {
      begin += 2;
    } else if (tmpl.substr(begin, 1) == "\n") {
      begin += 1;
    } else {
      continue;
    }
    const std::size_t end = tmpl.find(kClose, begin);
    if (end == std::string_view::npos) continue;
    const std::string_view literal = tmpl.substr(begin, end - begin);
    // Only a plain literal: a quote, a '+' or a brace means an expression.
    if (literal.empty() || literal.find_first_of("'\"+{}") != std::string_view::npos) continue;
    std::string text;
    for (std::size_t i = 0; i < literal.size(); ++i) {
      if (literal[i] == '\\' && i + 1 < literal.size()) {
        const char escaped = literal[++i];
        text.push_back(escaped == 'n' ? '\n' : escaped == 't' ? '\t' : escaped);
      } else {
        text.push_back(literal[i]);
      }
    }
    return text;
  }
  return "";
}

Status alternation_error(std::size_t index, ChatFamily family) {
  return Status::invalid_argument(
      fmt::format("messages[{}]: the {} chat template needs user and assistant messages to alternate, starting "
                  "with user, after an optional first system message",
                  index, chat_family_name(family)));
}

}  // namespace

std::string_view chat_role_name(ChatRole role) {
  switch (role) {
    case ChatRole::kSystem:
      return "system";
    case ChatRole::kUser:
      return "user";
    case ChatRole::kAssistant:
      return "assistant";
  }
  return "";
}

std::optional<ChatRole> chat_role_from_name(std::string_view name) {
  if (name == "system") return ChatRole::kSystem;
  if (name == "user") return ChatRole::kUser;
  if (name == "assistant") return ChatRole::kAssistant;
  return std::nullopt;
}

std::string_view chat_family_name(ChatFamily family) {
  switch (family) {
    case ChatFamily::kLlama2:
      return "llama2";
    case ChatFamily::kLlama3:
      return "llama3";
    case ChatFamily::kChatMl:
      return "chatml";
    case ChatFamily::kZephyr:
      return "zephyr";
    case ChatFamily::kMistral:
      return "mistral";
    case ChatFamily::kFallback:
      return "fallback";
  }
  return "";
}

ChatTemplate ChatTemplate::recognise(std::string_view tmpl) {
  if (contains(tmpl, "<|start_header_id|>")) return ChatTemplate(ChatFamily::kLlama3);
  if (contains(tmpl, "<|im_start|>")) {
    ChatTemplate result(ChatFamily::kChatMl);
    result.default_system_ = default_chatml_system(tmpl);
    return result;
  }
  if (contains(tmpl, "[INST]")) {
    if (contains(tmpl, "<<SYS>>")) return ChatTemplate(ChatFamily::kLlama2);
    ChatTemplate result(ChatFamily::kMistral);
    MistralDialect& d = result.mistral_;
    if (has_literal(tmpl, " [INST] ")) {
      d.inst_open = " [INST] ";
    } else if (has_literal(tmpl, "[INST] ")) {
      d.inst_open = "[INST] ";
    } else if (has_literal(tmpl, "[INST]")) {
      d.inst_open = "[INST]";
    }
    if (!has_literal(tmpl, " [/INST]") && has_literal(tmpl, "[/INST]")) d.inst_close = "[/INST]";
    if (contains(tmpl, "' ' + message") || contains(tmpl, "\" \" + message")) d.assistant_prefix = " ";
    d.trim_assistant = contains(tmpl, "|trim + eos_token") || contains(tmpl, "| trim + eos_token");
    if (contains(tmpl, "loop.last and system_message")) d.system = SystemPlacement::kLastUser;
    return result;
  }
  // Phi-3 uses <|user|> too, but ends turns with <|end|>; ChatGLM starts with [gMASK].
  if (contains(tmpl, "<|user|>") && contains(tmpl, "<|assistant|>") && !contains(tmpl, "<|end|>") &&
      !contains(tmpl, "[gMASK]")) {
    return ChatTemplate(ChatFamily::kZephyr);
  }
  return ChatTemplate(ChatFamily::kFallback);
}

Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages, GenerationPrompt generation_prompt,
                                         const SpecialTokens& tokens) const {
  if (messages.empty()) return Status::invalid_argument("messages must hold at least one message");
  const bool add = generation_prompt == GenerationPrompt::kAdd;
  std::string out;
  switch (family_) {
    case ChatFamily::kLlama2:
      return render_llama2(messages, tokens);
    case ChatFamily::kMistral:
      return render_mistral(messages, tokens);

    case ChatFamily::kLlama3:
      // {% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'
      //    + message['content'] | trim + '<|eot_id|>' %}, bos_token before the first.
      for (std::size_t i = 0; i < messages.size(); ++i) {
        if (i == 0) out += tokens.bos;
        out += "<|start_header_id|>";
        out += chat_role_name(messages[i].role);
        out += "<|end_header_id|>\n\n";
        out += strip(messages[i].content);
        out += "<|eot_id|>";
      }
      if (add) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;

    case ChatFamily::kZephyr:
      // '<|role|>\n' + content + eos_token, then the newline after }} that
      // trim_blocks keeps; the generation prompt sits in the loop, after the last.
      for (const ChatMessage& message : messages) {
        out += "<|";
        out += chat_role_name(message.role);
        out += "|>\n";
        out += message.content;
        out += tokens.eos;
        out += "\n";
      }
      if (add) out += "<|assistant|>\n";
      return out;

    case ChatFamily::kChatMl:
    case ChatFamily::kFallback:
      if (!default_system_.empty() && messages[0].role != ChatRole::kSystem) {
        out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
      }
      for (const ChatMessage& message : messages) {
        out += "<|im_start|>";
        out += chat_role_name(message.role);
        out += "\n";
        out += message.content;
        out += "<|im_end|>\n";
      }
      if (add) out += "<|im_start|>assistant\n";
      return out;
  }
  return Status::internal("unknown chat family");
}

// {% if messages[0]['role'] == 'system' %} ... system_message = its content,
// loop over the rest; roles must alternate from user; the first user message
// gets '<<SYS>>\n' + system + '\n<</SYS>>\n\n' before it; user:
// bos_token + '[INST] ' + content.strip() + ' [/INST]'; assistant:
// ' ' + content.strip() + ' ' + eos_token.
Result<std::string> ChatTemplate::render_llama2(std::span<const ChatMessage> messages,
                                                const SpecialTokens& tokens) const {
  const bool has_system = messages[0].role == ChatRole::kSystem;
  const std::size_t first = has_system ? 1 : 0;
  std::string out;
  for (std::size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    const bool user_turn = (i - first) % 2 == 0;
    if (message.role != (user_turn ? ChatRole::kUser : ChatRole::kAssistant)) {
      return alternation_error(i, family_);
    }
    std::string content;
    if (i == first && has_system) {
      content = "<<SYS>>\n" + messages[0].content + "\n<</SYS>>\n\n" + message.content;
    } else {
      content = message.content;
    }
    if (user_turn) {
      out += tokens.bos;
      out += "[INST] ";
      out += strip(content);
      out += " [/INST]";
    } else {
      out += " ";
      out += strip(content);
      out += " ";
      out += tokens.eos;
    }
  }
  return out;
}

// bos_token, then: user: open + [system + '\n\n' +] content + close;
// assistant: prefix + content [| trim] + eos_token. See MistralDialect.
Result<std::string> ChatTemplate::render_mistral(std::span<const ChatMessage> messages,
                                                 const SpecialTokens& tokens) const {
  const bool has_system = messages[0].role == ChatRole::kSystem;
  const std::size_t first = has_system ? 1 : 0;
  for (std::size_t i = first; i < messages.size(); ++i) {
    const bool user_turn = (i - first) % 2 == 0;
    if (messages[i].role != (user_turn ? ChatRole::kUser : ChatRole::kAssistant)) {
      return alternation_error(i, family_);
    }
  }
  const MistralDialect& d = mistral_;
  std::string out = tokens.bos;
  for (std::size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (message.role == ChatRole::kUser) {
      const bool with_system =
          has_system && (d.system == SystemPlacement::kFirstUser ? i == first : i + 1 == messages.size());
      out += d.inst_open;
      if (with_system) {
        out += messages[0].content;
        out += "\n\n";
      }
      out += message.content;
      out += d.inst_close;
    } else {
      out += d.assistant_prefix;
      out += d.trim_assistant ? strip(message.content) : std::string_view(message.content);
      out += tokens.eos;
    }
  }
  return out;
}

}  // namespace headroom::infer
