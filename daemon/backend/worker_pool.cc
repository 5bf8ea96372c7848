#include "daemon/backend/worker_pool.h"

#include <chrono>
#include <utility>

namespace hsmd::backend {

WorkerPool::WorkerPool(size_t max_threads)
    : max_threads_(max_threads == 0 ? 1 : max_threads),
      state_(std::make_shared<State>()) {}

WorkerPool::~WorkerPool() { Shutdown(absl::InfiniteDuration()); }

void WorkerPool::WorkerLoop(std::shared_ptr<State> state) {
  std::unique_lock<std::mutex> lock(state->mu);
  while (true) {
    ++state->idle;
    state->work_cv.wait(lock, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
      return state->stopping || !state->queue.empty();
    });
    --state->idle;
    if (state->queue.empty()) {  // Stopping with nothing left to do.
      --state->threads;
      state->done_cv.notify_all();
      return;
    }
    absl::AnyInvocable<void()> task = std::move(state->queue.front());
    state->queue.pop_front();
    ++state->running;
    lock.unlock();
    task();
    task = nullptr;  // Its captures go before the task counts as done.
    lock.lock();
    --state->running;
    if (state->stopping) state->done_cv.notify_all();
  }
}

void WorkerPool::Submit(absl::AnyInvocable<void()> task) {
  std::unique_lock<std::mutex> lock(state_->mu);
  if (state_->stopping) {
    lock.unlock();
    task();
    return;
  }
  state_->queue.push_back(std::move(task));
  // Idle workers that have not taken their task yet still count as idle, so
  // compare with the queue, not with zero.
  const bool start =
      state_->queue.size() > state_->idle && state_->threads < max_threads_;
  if (start) ++state_->threads;
  state_->work_cv.notify_one();
  lock.unlock();
  if (start) {
    std::thread worker(&WorkerPool::WorkerLoop, state_);
    std::lock_guard<std::mutex> threads_lock(threads_mu_);
    if (shut_down_) {
      worker.detach();  // Shutdown has taken the list; it exits by itself.
    } else {
      workers_.push_back(std::move(worker));
    }
  }
}

bool WorkerPool::Shutdown(absl::Duration grace) {
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> threads_lock(threads_mu_);
    if (shut_down_) return true;
    shut_down_ = true;
    workers.swap(workers_);
  }
  bool finished;
  {
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->stopping = true;
    state_->work_cv.notify_all();
    auto all_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
      return state_->running == 0 && state_->queue.empty();
    };
    if (grace == absl::InfiniteDuration()) {
      state_->done_cv.wait(lock, all_done);
      finished = true;
    } else {
      finished = state_->done_cv.wait_for(
          lock, absl::ToChronoNanoseconds(grace), all_done);
    }
  }
  for (std::thread& worker : workers) {
    if (finished) {
      worker.join();
    } else {
      worker.detach();
    }
  }
  return finished;
}

size_t WorkerPool::threads() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->threads;
}

size_t WorkerPool::running() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->running;
}

}  // namespace hsmd::backend
