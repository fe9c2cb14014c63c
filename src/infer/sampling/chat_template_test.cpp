#include "infer/sampling/chat_template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace headroom::infer {
namespace {

// ---- Reference templates -------------------------------------------------------
//
// Each is the model's tokenizer.chat_template as a GGUF carries it (the
// tokenizer_config.json value, JSON-decoded), written as a C++ literal: a
// "\n" here is a newline in the template, a "\\n" a backslash-n inside a
// Jinja string literal, which Jinja turns into a newline.

// meta-llama/Llama-2-7b-chat-hf
constexpr char kLlama2[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
    "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
    "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

// meta-llama/Meta-Llama-3-8B-Instruct
constexpr char kLlama3[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

// teknium/OpenHermes-2.5-Mistral-7B
constexpr char kChatMl[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// Qwen/Qwen2-1.5B-Instruct: ChatML with a default system prompt.
constexpr char kQwen2[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
    "%}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// HuggingFaceH4/zephyr-7b-beta (TinyLlama-1.1B-Chat carries the same).
constexpr char kZephyr[] =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token "
    "}}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% "
    "endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

// mistralai/Mistral-7B-Instruct-v0.2, as first published (and Mixtral-8x7B-Instruct).
constexpr char kMistralLegacy[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";

// mistralai/Mistral-7B-Instruct-v0.2, mistral's later "v1" template, with a system prompt.
constexpr char kMistralV1[] =
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set "
    "loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- "
    "bos_token }}\n{%- for message in loop_messages %}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 "
    "== 0) %}\n        {{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}\n    {%- endif %}\n    {%- if message['role'] == 'user' %}\n        {%- "
    "if loop.first and system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + "
    "message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' "
    "[/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + "
    "message['content'] + eos_token}}\n    {%- else %}\n        {{- raise_exception('Only user and assistant roles "
    "are supported, with the exception of an initial optional system message!') }}\n    {%- endif %}\n{%- endfor "
    "%}\n";

// mistralai/Mistral-Large-Instruct-2407, mistral's "v3" template (Mistral-7B-Instruct-v0.3's family).
constexpr char kMistralV3[] =
    "{%- if messages[0][\"role\"] == \"system\" %}\n    {%- set system_message = messages[0][\"content\"] %}\n    "
    "{%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif "
    "%}\n{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n{%- set user_messages = "
    "loop_messages | selectattr(\"role\", \"equalto\", \"user\") | list %}\n\n{#- This block checks for alternating "
    "user/assistant messages, skipping tool calling messages #}\n{%- set ns = namespace() %}\n{%- set ns.index = 0 "
    "%}\n{%- for message in loop_messages %}\n    {%- if not (message.role == \"tool\" or message.role == "
    "\"tool_results\" or (message.tool_calls is defined and message.tool_calls is not none)) %}\n        {%- if "
    "(message[\"role\"] == \"user\") != (ns.index % 2 == 0) %}\n            {{- raise_exception(\"After the "
    "optional system message, conversation roles must alternate user/assistant/user/assistant/...\") }}\n        "
    "{%- endif %}\n        {%- set ns.index = ns.index + 1 %}\n    {%- endif %}\n{%- endfor %}\n\n{{- bos_token "
    "}}\n{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n        {%- if tools is "
    "not none and (message == user_messages[-1]) %}\n            {{- \"[AVAILABLE_TOOLS] [\" }}\n            {%- "
    "for tool in tools %}\n                {%- set tool = tool.function %}\n                {{- '{\"type\": "
    "\"function\", \"function\": {' }}\n                {%- for key, val in tool.items() if key != \"return\" %}\n  "
    "                  {%- if val is string %}\n                        {{- '\"' + key + '\": \"' + val + '\"' "
    "}}\n                    {%- else %}\n                        {{- '\"' + key + '\": ' + val|tojson }}\n         "
    "           {%- endif %}\n                    {%- if not loop.last %}\n                        {{- \", \" }}\n  "
    "                  {%- endif %}\n                {%- endfor %}\n                {{- \"}}\" }}\n                "
    "{%- if not loop.last %}\n                    {{- \", \" }}\n                {%- else %}\n                    "
    "{{- \"]\" }}\n                {%- endif %}\n            {%- endfor %}\n            {{- \"[/AVAILABLE_TOOLS]\" "
    "}}\n            {%- endif %}\n        {%- if loop.last and system_message is defined %}\n            {{- "
    "\"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n        {%- else %}\n       "
    "     {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}\n    {%- elif "
    "message.tool_calls is defined and message.tool_calls is not none %}\n        {{- \"[TOOL_CALLS] [\" }}\n      "
    "  {%- for tool_call in message.tool_calls %}\n            {%- set out = tool_call.function|tojson %}\n         "
    "   {{- out[:-1] }}\n            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}\n            "
    "    {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!\") }}\n            {%- "
    "endif %}\n            {{- ', \"id\": \"' + tool_call.id + '\"}' }}\n            {%- if not loop.last %}\n      "
    "          {{- \", \" }}\n            {%- else %}\n                {{- \"]\" + eos_token }}\n            {%- "
    "endif %}\n        {%- endfor %}\n    {%- elif message[\"role\"] == \"assistant\" %}\n        {{- \" \" + "
    "message[\"content\"]|trim + eos_token}}\n    {%- elif message[\"role\"] == \"tool_results\" or "
    "message[\"role\"] == \"tool\" %}\n        {%- if message.content is defined and message.content.content is "
    "defined %}\n            {%- set content = message.content.content %}\n        {%- else %}\n            {%- set "
    "content = message.content %}\n        {%- endif %}\n        {{- '[TOOL_RESULTS] {\"content\": ' + "
    "content|string + \", \" }}\n        {%- if not message.tool_call_id is defined or message.tool_call_id|length "
    "!= 9 %}\n            {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!\") }}\n "
    "       {%- endif %}\n        {{- '\"call_id\": \"' + message.tool_call_id + '\"}[/TOOL_RESULTS]' }}\n    {%- "
    "else %}\n        {{- raise_exception(\"Only user and assistant roles are supported, with the exception of an "
    "initial optional system message!\") }}\n    {%- endif %}\n{%- endfor %}\n";

// mistralai/Mistral-Nemo-Instruct-2407, mistral's "v3-tekken" template.
constexpr char kMistralTekken[] =
    "{%- if messages[0][\"role\"] == \"system\" %}\n    {%- set system_message = messages[0][\"content\"] %}\n   "
    " {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n{%- "
    "if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n{%- set user_messages = loop_messages "
    "| selectattr(\"role\", \"equalto\", \"user\") | list %}\n\n{#- This block checks for alternating user/assistant "
    "messages, skipping tool calling messages #}\n{%- set ns = namespace() %}\n{%- set ns.index = 0 %}\n{%- for "
    "message "
    "in loop_messages %}\n    {%- if not (message.role == \"tool\" or message.role == \"tool_results\" or "
    "(message.tool_calls "
    "is defined and message.tool_calls is not none)) %}\n        {%- if (message[\"role\"] == \"user\") != (ns.index "
    "% 2 == 0) %}\n            {{- raise_exception(\"After the optional system message, conversation roles must "
    "alternate "
    "user/assistant/user/assistant/...\") }}\n        {%- endif %}\n        {%- set ns.index = ns.index + 1 %}\n "
    "   {%- endif %}\n{%- endfor %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if "
    "message[\"role\"] "
    "== \"user\" %}\n        {%- if tools is not none and (message == user_messages[-1]) %}\n            {{- "
    "\"[AVAILABLE_TOOLS][\" "
    "}}\n            {%- for tool in tools %}\n                {%- set tool = tool.function %}\n                {{- "
    "'{\"type\": \"function\", \"function\": {' }}\n                {%- for key, val in tool.items() if key != "
    "\"return\" "
    "%}\n                    {%- if val is string %}\n                        {{- '\"' + key + '\": \"' + val + '\"' "
    "}}\n                    {%- else %}\n                        {{- '\"' + key + '\": ' + val|tojson }}\n      "
    "              {%- endif %}\n                    {%- if not loop.last %}\n                        {{- \", \" "
    "}}\n                    {%- endif %}\n                {%- endfor %}\n                {{- \"}}\" }}\n        "
    "        {%- if not loop.last %}\n                    {{- \", \" }}\n                {%- else %}\n           "
    "         {{- \"]\" }}\n                {%- endif %}\n            {%- endfor %}\n            {{- "
    "\"[/AVAILABLE_TOOLS]\" "
    "}}\n            {%- endif %}\n        {%- if loop.last and system_message is defined %}\n            {{- "
    "\"[INST]\" "
    "+ system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n        {%- else %}\n            {{- "
    "\"[INST]\" + message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}\n    {%- elif (message.tool_calls is "
    "defined and message.tool_calls is not none) %}\n        {{- \"[TOOL_CALLS][\" }}\n        {%- for tool_call "
    "in message.tool_calls %}\n            {%- set out = tool_call.function|tojson %}\n            {{- out[:-1] }}\n "
    "           {%- if not tool_call.id is defined or tool_call.id|length != 9 %}\n                {{- "
    "raise_exception(\"Tool "
    "call IDs should be alphanumeric strings with length 9!\") }}\n            {%- endif %}\n            {{- ', "
    "\"id\": "
    "\"' + tool_call.id + '\"}' }}\n            {%- if not loop.last %}\n                {{- \", \" }}\n         "
    "   {%- else %}\n                {{- \"]\" + eos_token }}\n            {%- endif %}\n        {%- endfor %}\n "
    "   {%- elif message[\"role\"] == \"assistant\" %}\n        {{- message[\"content\"] + eos_token}}\n    {%- elif "
    "message[\"role\"] == \"tool_results\" or message[\"role\"] == \"tool\" %}\n        {%- if message.content is "
    "defined and message.content.content is defined %}\n            {%- set content = message.content.content %}\n "
    "       {%- else %}\n            {%- set content = message.content %}\n        {%- endif %}\n        {{- "
    "'[TOOL_RESULTS]{\"content\": "
    "' + content|string + \", \" }}\n        {%- if not message.tool_call_id is defined or message.tool_call_id|length "
    "!= 9 %}\n            {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!\") }}\n "
    "       {%- endif %}\n        {{- '\"call_id\": \"' + message.tool_call_id + '\"}[/TOOL_RESULTS]' }}\n    {%- "
    "else %}\n        {{- raise_exception(\"Only user and assistant roles are supported, with the exception of an "
    "initial optional system message!\") }}\n    {%- endif %}\n{%- endfor %}\n";

// ---- Conversations ---------------------------------------------------------------

using Conversation = std::vector<ChatMessage>;
const Conversation kOne = {{ChatRole::kUser, "Hello"}};
const Conversation kTurns = {{ChatRole::kSystem, "You are a helpful assistant"},
                             {ChatRole::kUser, "Hello"},
                             {ChatRole::kAssistant, "Hi there"},
                             {ChatRole::kUser, "Who are you"}};
// Spaces and newlines where the templates strip (Python's str.strip) or not.
const Conversation kSpaces = {{ChatRole::kSystem, " Be brief. "},
                              {ChatRole::kUser, "  What is 2+2?\n"},
                              {ChatRole::kAssistant, "  4  "},
                              {ChatRole::kUser, "And 3+3?"}};
const Conversation kAnswered = {{ChatRole::kUser, "Hi"}, {ChatRole::kAssistant, "Hello! How can I help?"}};
const Conversation kSystemThenAnswered = {{ChatRole::kSystem, "S"},
                                          {ChatRole::kUser, "U1"},
                                          {ChatRole::kAssistant, "A1"},
                                          {ChatRole::kUser, "U2"},
                                          {ChatRole::kAssistant, "A2"}};

const SpecialTokens kSentencePiece = {"<s>", "</s>"};
const SpecialTokens kLlama3Tokens = {"<|begin_of_text|>", "<|eot_id|>"};

constexpr GenerationPrompt kAdd = GenerationPrompt::kAdd;
constexpr GenerationPrompt kOmit = GenerationPrompt::kOmit;

struct Case {
  const char* name;
  const char* tmpl;
  const Conversation* conversation;
  GenerationPrompt prompt;
  const char* expected;  // what the reference template renders, worked out by hand from it
};

// Each expected string was worked out by hand from the template above, then
// checked against Jinja2 3.1.6 rendering the same template and conversation
// with Hugging Face's settings (trim_blocks, lstrip_blocks).
const Case kCases[] = {
    // llama2: bos + '[INST] ' + strip(content) + ' [/INST]'; ' ' + strip(content) + ' ' + eos.
    {"llama2/one", kLlama2, &kOne, kAdd, "<s>[INST] Hello [/INST]"},
    {"llama2/turns", kLlama2, &kTurns, kAdd,
     "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s>"
     "<s>[INST] Who are you [/INST]"},
    {"llama2/spaces", kLlama2, &kSpaces, kAdd,
     "<s>[INST] <<SYS>>\n Be brief. \n<</SYS>>\n\n  What is 2+2? [/INST] 4 </s><s>[INST] And 3+3? [/INST]"},
    {"llama2/answered", kLlama2, &kAnswered, kOmit, "<s>[INST] Hi [/INST] Hello! How can I help? </s>"},
    {"llama2/answered+prompt", kLlama2, &kAnswered, kAdd, "<s>[INST] Hi [/INST] Hello! How can I help? </s>"},

    // llama3: bos first; header + trim(content) + <|eot_id|>; the assistant header to prompt.
    {"llama3/one", kLlama3, &kOne, kAdd,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"llama3/turns", kLlama3, &kTurns, kAdd,
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"llama3/spaces", kLlama3, &kSpaces, kAdd,
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"llama3/answered", kLlama3, &kAnswered, kOmit,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>"},

    // chatml: '<|im_start|>' + role + '\n' + content + '<|im_end|>\n', nothing stripped.
    {"chatml/one", kChatMl, &kOne, kAdd, "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"},
    {"chatml/turns", kChatMl, &kTurns, kAdd,
     "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
     "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"chatml/spaces", kChatMl, &kSpaces, kOmit,
     "<|im_start|>system\n Be brief. <|im_end|>\n<|im_start|>user\n  What is 2+2?\n<|im_end|>\n"
     "<|im_start|>assistant\n  4  <|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n"},
    {"qwen2/one", kQwen2, &kOne, kAdd,
     "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"qwen2/turns", kQwen2, &kTurns, kAdd,
     "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
     "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
     "<|im_start|>assistant\n"},

    // zephyr: '<|role|>\n' + content + eos, the newline after each }}, '<|assistant|>\n' last.
    {"zephyr/one", kZephyr, &kOne, kAdd, "<|user|>\nHello</s>\n<|assistant|>\n"},
    {"zephyr/turns", kZephyr, &kTurns, kAdd,
     "<|system|>\nYou are a helpful assistant</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there</s>\n"
     "<|user|>\nWho are you</s>\n<|assistant|>\n"},
    {"zephyr/spaces", kZephyr, &kSpaces, kAdd,
     "<|system|>\n Be brief. </s>\n<|user|>\n  What is 2+2?\n</s>\n<|assistant|>\n  4  </s>\n"
     "<|user|>\nAnd 3+3?</s>\n<|assistant|>\n"},
    {"zephyr/answered", kZephyr, &kAnswered, kOmit, "<|user|>\nHi</s>\n<|assistant|>\nHello! How can I help?</s>\n"},

    // mistral legacy: bos; '[INST] ' + content + ' [/INST]'; content + eos.
    {"mistral-legacy/one", kMistralLegacy, &kOne, kAdd, "<s>[INST] Hello [/INST]"},
    {"mistral-legacy/answered", kMistralLegacy, &kAnswered, kOmit, "<s>[INST] Hi [/INST]Hello! How can I help?</s>"},

    // mistral v1: ' [INST] ' + [system + '\n\n' +] content + ' [/INST]'; ' ' + content + eos.
    {"mistral-v1/one", kMistralV1, &kOne, kAdd, "<s> [INST] Hello [/INST]"},
    {"mistral-v1/turns", kMistralV1, &kTurns, kAdd,
     "<s> [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]"},
    {"mistral-v1/spaces", kMistralV1, &kSpaces, kAdd,
     "<s> [INST]  Be brief. \n\n  What is 2+2?\n [/INST]   4  </s> [INST] And 3+3? [/INST]"},
    {"mistral-v1/answered", kMistralV1, &kAnswered, kOmit, "<s> [INST] Hi [/INST] Hello! How can I help?</s>"},

    // mistral v3: '[INST] ' + content + '[/INST]', the system before the last
    // message when that is the user's (else nowhere); ' ' + trim(content) + eos.
    {"mistral-v3/one", kMistralV3, &kOne, kAdd, "<s>[INST] Hello[/INST]"},
    {"mistral-v3/turns", kMistralV3, &kTurns, kAdd,
     "<s>[INST] Hello[/INST] Hi there</s>[INST] You are a helpful assistant\n\nWho are you[/INST]"},
    {"mistral-v3/spaces", kMistralV3, &kSpaces, kAdd,
     "<s>[INST]   What is 2+2?\n[/INST] 4</s>[INST]  Be brief. \n\nAnd 3+3?[/INST]"},
    {"mistral-v3/system-then-answered", kMistralV3, &kSystemThenAnswered, kOmit,
     "<s>[INST] U1[/INST] A1</s>[INST] U2[/INST] A2</s>"},

    // mistral tekken: '[INST]' + content + '[/INST]'; content + eos.
    {"mistral-tekken/one", kMistralTekken, &kOne, kAdd, "<s>[INST]Hello[/INST]"},
    {"mistral-tekken/turns", kMistralTekken, &kTurns, kAdd,
     "<s>[INST]Hello[/INST]Hi there</s>[INST]You are a helpful assistant\n\nWho are you[/INST]"},
    {"mistral-tekken/answered", kMistralTekken, &kAnswered, kOmit, "<s>[INST]Hi[/INST]Hello! How can I help?</s>"},
};

TEST(ChatTemplate, RendersAsTheReferenceTemplates) {
  for (const Case& c : kCases) {
    const ChatTemplate tmpl = ChatTemplate::recognise(c.tmpl);
    const SpecialTokens& tokens = tmpl.family() == ChatFamily::kLlama3 ? kLlama3Tokens : kSentencePiece;
    const Result<std::string> got = tmpl.render(*c.conversation, c.prompt, tokens);
    ASSERT_TRUE(got.is_ok()) << c.name << ": " << got.status().to_string();
    EXPECT_EQ(*got, c.expected) << c.name;
  }
}

TEST(ChatTemplate, RecognisesEachFamily) {
  const std::pair<const char*, ChatFamily> cases[] = {
      {kLlama2, ChatFamily::kLlama2},
      {kLlama3, ChatFamily::kLlama3},
      {kChatMl, ChatFamily::kChatMl},
      {kQwen2, ChatFamily::kChatMl},
      {kZephyr, ChatFamily::kZephyr},
      {kMistralLegacy, ChatFamily::kMistral},
      {kMistralV1, ChatFamily::kMistral},
      {kMistralV3, ChatFamily::kMistral},
      {kMistralTekken, ChatFamily::kMistral},
      {"", ChatFamily::kFallback},
      {"{{ messages }}", ChatFamily::kFallback},
      // Phi-3 uses <|user|> and <|assistant|>, but with <|end|>: not Zephyr.
      {"{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + '<|end|>\\n' "
       "}}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
       ChatFamily::kFallback},
  };
  for (const auto& [text, family] : cases) {
    EXPECT_EQ(ChatTemplate::recognise(text).family(), family) << text;
  }
  EXPECT_EQ(chat_family_name(ChatFamily::kLlama2), "llama2");
  EXPECT_EQ(chat_family_name(ChatFamily::kFallback), "fallback");
}

TEST(ChatTemplate, FallbackIsPlainChatMl) {
  const ChatTemplate tmpl = ChatTemplate::recognise("");
  EXPECT_EQ(tmpl.family(), ChatFamily::kFallback);
  EXPECT_EQ(*tmpl.render(kTurns, kAdd, kSentencePiece), *ChatTemplate::recognise(kChatMl).render(kTurns, kAdd, {}));
  EXPECT_EQ(*tmpl.render(kOne, kOmit, {}), "<|im_start|>user\nHello<|im_end|>\n");
}

// Departures from the templates, each documented in chat_template.h.
TEST(ChatTemplate, MistralLegacyTakesASystemMessageAsV1Does) {
  // The legacy template raises on a system message; v1, the same model's
  // later template, puts it before the first user message.
  EXPECT_EQ(*ChatTemplate::recognise(kMistralLegacy).render(kTurns, kAdd, kSentencePiece),
            "<s>[INST] You are a helpful assistant\n\nHello [/INST]Hi there</s>[INST] Who are you [/INST]");
}

TEST(ChatTemplate, RoleOrderErrorsNameTheMessage) {
  const Conversation starts_with_assistant = {{ChatRole::kAssistant, "Hi"}};
  const Conversation two_users = {{ChatRole::kUser, "a"}, {ChatRole::kUser, "b"}};
  const Conversation late_system = {{ChatRole::kUser, "a"}, {ChatRole::kSystem, "b"}};
  const Conversation system_then_assistant = {{ChatRole::kSystem, "s"}, {ChatRole::kAssistant, "a"}};
  for (const char* text : {kLlama2, kMistralLegacy, kMistralV1, kMistralV3, kMistralTekken}) {
    const ChatTemplate tmpl = ChatTemplate::recognise(text);
    for (const auto& [conversation, index] : {std::pair{&starts_with_assistant, 0}, std::pair{&two_users, 1},
                                              std::pair{&late_system, 1}, std::pair{&system_then_assistant, 1}}) {
      const Result<std::string> got = tmpl.render(*conversation, kAdd, kSentencePiece);
      ASSERT_FALSE(got.is_ok()) << chat_family_name(tmpl.family());
      EXPECT_EQ(got.status().code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(got.status().message().find("messages[" + std::to_string(index) + "]"), std::string::npos)
          << got.status().message();
      EXPECT_NE(got.status().message().find("alternate"), std::string::npos) << got.status().message();
    }
  }
  // The other families take any order, as their templates do.
  for (const char* text : {kLlama3, kChatMl, kZephyr, ""}) {
    EXPECT_TRUE(ChatTemplate::recognise(text).render(two_users, kAdd, kSentencePiece).is_ok());
  }
}

TEST(ChatTemplate, NoMessagesIsAnError) {
  const Result<std::string> got = ChatTemplate::recognise(kLlama3).render({}, kAdd, kLlama3Tokens);
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().message(), "messages must hold at least one message");
}

TEST(ChatTemplate, OnlyASystemMessage) {
  const Conversation system_only = {{ChatRole::kSystem, "s"}};
  // As the templates: Llama 2 renders nothing, Mistral only the bos.
  EXPECT_EQ(*ChatTemplate::recognise(kLlama2).render(system_only, kAdd, kSentencePiece), "");
  EXPECT_EQ(*ChatTemplate::recognise(kMistralV1).render(system_only, kAdd, kSentencePiece), "<s>");
}

TEST(ChatTemplate, StripIsPythonsStrip) {
  // Llama 3's trim strips Unicode spaces too (U+00A0, U+3000), and only at the ends.
  const Conversation c = {{ChatRole::kUser, "\xC2\xA0\t hi \xE3\x80\x80 there\xE3\x80\x80\n"}};
  EXPECT_EQ(*ChatTemplate::recognise(kLlama3).render(c, kOmit, {}),
            "<|start_header_id|>user<|end_header_id|>\n\nhi \xE3\x80\x80 there<|eot_id|>");
  // Not a space: an overlong encoding, or a bare continuation byte.
  const Conversation odd = {{ChatRole::kUser, "\xC0\xA0x\x80"}};
  EXPECT_EQ(*ChatTemplate::recognise(kLlama3).render(odd, kOmit, {}),
            "<|start_header_id|>user<|end_header_id|>\n\n\xC0\xA0x\x80<|eot_id|>");
  const Conversation blank = {{ChatRole::kUser, " \n "}};
  EXPECT_EQ(*ChatTemplate::recognise(kLlama2).render(blank, kAdd, kSentencePiece), "<s>[INST]  [/INST]");
}

TEST(ChatTemplate, RoleNames) {
  for (ChatRole role : {ChatRole::kSystem, ChatRole::kUser, ChatRole::kAssistant}) {
    EXPECT_EQ(chat_role_from_name(chat_role_name(role)), role);
  }
  EXPECT_EQ(chat_role_from_name("tool"), std::nullopt);
  EXPECT_EQ(chat_role_from_name("User"), std::nullopt);
}

}  // namespace
}  // namespace headroom::infer
