#include "proxy_provider/random_pool.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace hsmd::proxy {

RandomPool::RandomPool(Fetcher fetcher, size_t batch_bytes)
    : fetcher_(std::move(fetcher)),
      batch_bytes_(std::clamp<size_t>(batch_bytes, 1, kMaxFetchBytes)) {}

RandomPool::~RandomPool() {
  State* state = state_.exchange(nullptr);
  while (state != nullptr) {
    State* next = state->abandoned;
    if (state->pid == getpid()) {
      std::lock_guard<std::mutex> lock(state->mu);
      OPENSSL_cleanse(state->buffer.data(), state->buffer.size());
    }
    delete state;
    state = next;
  }
}

RandomPool::State* RandomPool::CurrentState() {
  const pid_t pid = getpid();
  State* current = state_.load(std::memory_order_acquire);
  while (current == nullptr || current->pid != pid) {
    State* fresh = new State(pid);
    fresh->abandoned = current;
    if (state_.compare_exchange_weak(current, fresh,
                                     std::memory_order_acq_rel)) {
      return fresh;
    }
    // Another thread of this process installed one first (or the CAS failed
    // spuriously); `current` now holds the latest value.
    fresh->abandoned = nullptr;
    delete fresh;
  }
  return current;
}

absl::Status RandomPool::Fill(unsigned char* out, size_t length) {
  State* state = CurrentState();
  while (length > 0) {
    {
      std::lock_guard<std::mutex> lock(state->mu);
      size_t available = state->buffer.size() - state->position;
      size_t take = std::min(length, available);
      if (take > 0) {
        char* source = state->buffer.data() + state->position;
        std::memcpy(out, source, take);
        OPENSSL_cleanse(source, take);
        state->position += take;
        out += take;
        length -= take;
      }
      if (length == 0) break;
    }
    // Fetch without holding the lock: the RPC may take a while, and other
    // threads may still be served from what is left.
    size_t want = std::min(std::max(length, batch_bytes_), kMaxFetchBytes);
    absl::StatusOr<std::string> fresh = fetcher_(want);
    if (!fresh.ok()) return fresh.status();
    if (fresh->size() != want) {
      OPENSSL_cleanse(fresh->data(), fresh->size());
      return absl::InternalError(absl::StrCat("hsmd returned ", fresh->size(),
                                              " random bytes, ", want,
                                              " requested"));
    }
    std::lock_guard<std::mutex> lock(state->mu);
    // Keep the unused bytes, append the fresh ones, and wipe every copy left
    // behind (std::string frees its old storage without clearing it).
    std::string merged;
    merged.reserve(state->buffer.size() - state->position + fresh->size());
    merged.append(state->buffer, state->position, std::string::npos);
    merged.append(*fresh);
    OPENSSL_cleanse(state->buffer.data(), state->buffer.size());
    state->buffer.swap(merged);
    state->position = 0;
    state->fetches++;
    OPENSSL_cleanse(fresh->data(), fresh->size());
  }
  return absl::OkStatus();
}

size_t RandomPool::fetches_in_this_process() {
  State* state = CurrentState();
  std::lock_guard<std::mutex> lock(state->mu);
  return state->fetches;
}

}  // namespace hsmd::proxy
