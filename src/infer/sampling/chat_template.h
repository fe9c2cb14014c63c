// ChatTemplate: turns chat messages into the prompt text a model was tuned on.
//
// A GGUF model carries its Hugging Face chat template, a Jinja program, as
// tokenizer.chat_template. Rather than interpret Jinja, Headroom recognises
// the common families by markers in the template text and renders each the
// way its reference template does (Hugging Face's Jinja environment:
// trim_blocks, lstrip_blocks):
//
//   family    marker                          reference template
//   llama3    <|start_header_id|>             Meta-Llama-3-8B-Instruct
//   chatml    <|im_start|>                    OpenHermes-2.5 / Qwen2 (a default
//                                             system prompt is picked up)
//   llama2    [INST] and <<SYS>>              Llama-2-7b-chat-hf
//   mistral   [INST] without <<SYS>>          Mistral-7B-Instruct-v0.2 and its
//                                             revisions: v0.2 legacy, v0.2 "v1"
//                                             (system prompt), v0.3 / Large
//                                             2407 "v3", Nemo "v3-tekken"; the
//                                             spacing and system placement are
//                                             read from the template's text
//   zephyr    <|user|> (not Phi-3's <|end|>)  zephyr-7b-beta (also TinyLlama)
//   fallback  anything else, or no template   ChatML, without a default system
//                                             prompt
//
// The fallback is ChatML, as llama.cpp's is: it is what most fine-tunes of
// unknown lineage were trained on, and its markers still read as plain text to
// a model that lacks them. family() says "fallback", for the caller to log or
// report which family was used.
//
// The tests hold each reference template and what it renders for several
// conversations (worked out by hand from the template, checked with Jinja2).
// Where Headroom departs from a template, on purpose:
//   - Llama 2: a system message anywhere but first is an error (the template
//     drops it without a word, or raises, depending on its position).
//   - Mistral legacy: the template raises on a system message; Headroom puts
//     it before the first user message, separated by "\n\n", as Mistral's own
//     "v1" revision of the same template does.
//   - Llama 3.1 and later render as Llama 3: their "Cutting Knowledge Date"
//     system preamble is not reproduced. Likewise Mistral's v7 templates
//     ([SYSTEM_PROMPT]) put a system message before the first user message,
//     inside its [INST].
// Errors are invalid_argument naming the message, where the template would
// raise: Llama 2 and Mistral need user and assistant to alternate, starting
// with user, after an optional first system message.
//
// The bos and eos strings are inserted where the template puts them, so the
// caller must tokenize the result with special tokens parsed and without
// adding another BOS (or pass an empty bos and add the BOS token itself).
//
// A ChatTemplate is immutable after recognise(); safe to share across threads.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace headroom::infer {

enum class ChatRole : std::uint8_t { kSystem, kUser, kAssistant };

// "system", "user", "assistant".
std::string_view chat_role_name(ChatRole role);
std::optional<ChatRole> chat_role_from_name(std::string_view name);

struct ChatMessage {
  ChatRole role = ChatRole::kUser;
  std::string content;
};

enum class ChatFamily : std::uint8_t { kLlama2, kLlama3, kChatMl, kZephyr, kMistral, kFallback };

// "llama2", "llama3", "chatml", "zephyr", "mistral", "fallback".
std::string_view chat_family_name(ChatFamily family);

enum class GenerationPrompt : std::uint8_t {
  kAdd,   // end with the opening of an assistant turn, for the model to complete
  kOmit,  // render the conversation only
};

struct SpecialTokens {
  std::string bos;  // "<s>", "<|begin_of_text|>"
  std::string eos;  // "</s>", "<|eot_id|>"
};

class ChatTemplate {
 public:
  // The family of a template text, which may be empty.
  static ChatTemplate recognise(std::string_view template_text);

  ChatFamily family() const { return family_; }

  // The prompt for messages (at least one). Llama 2 and Mistral end every
  // user turn with the assistant's cue ("[/INST]") and so ignore
  // GenerationPrompt, as their templates do.
  Result<std::string> render(std::span<const ChatMessage> messages, GenerationPrompt generation_prompt,
                             const SpecialTokens& tokens) const;

 private:
  // What tells the Mistral templates apart.
  enum class SystemPlacement : std::uint8_t { kFirstUser, kLastUser };
  struct MistralDialect {
    std::string_view inst_open = "[INST] ";
    std::string_view inst_close = " [/INST]";
    std::string_view assistant_prefix;  // "" or " "
    bool trim_assistant = false;
    SystemPlacement system = SystemPlacement::kFirstUser;
  };

  explicit ChatTemplate(ChatFamily family) : family_(family) {}

  Result<std::string> render_llama2(std::span<const ChatMessage> messages, const SpecialTokens& tokens) const;
  Result<std::string> render_mistral(std::span<const ChatMessage> messages, const SpecialTokens& tokens) const;

  ChatFamily family_;
  MistralDialect mistral_;
  std::string default_system_;  // ChatML's, when the template has one
};

}  // namespace headroom::infer
