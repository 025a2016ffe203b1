// Turns generated token ids into printable text one token at a time. A character of several bytes may arrive
// spread over byte-fallback tokens (<0xE6><0x97><0xA5>), so the bytes of a sequence still incomplete are held back
// until a later token completes it; everything pushed and then flushed equals Tokenizer::Decode of all the ids.
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include "g4/text/tokenizer.hpp"
#include "g4/text/utf8.hpp"

namespace g4 {

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_control = false)
      : tokenizer_(&tokenizer), skip_control_(skip_control) {}

  // The text that became complete with this token (often empty while a character is half there).
  std::string Push(int32_t id) {
    if (skip_control_ && tokenizer_->IsControl(id)) return {};
    pending_ += tokenizer_->TokenText(id);
    const size_t ready = pending_.size() - utf8::IncompleteTail(pending_);
    std::string out = pending_.substr(0, ready);
    pending_.erase(0, ready);
    return out;
  }

  // What is still held back (a sequence the generation never completed), as raw bytes.
  std::string Flush() { return std::exchange(pending_, std::string()); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_control_;
  std::string pending_;  // at most 3 bytes: the start of an unfinished UTF-8 sequence
};

}  // namespace g4
