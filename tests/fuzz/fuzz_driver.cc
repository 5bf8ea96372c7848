// A libFuzzer-compatible driver for the normal (gcc) build, so every fuzz
// target also runs in the ordinary test command: it replays the seed corpus
// given as argv[1] and then a fixed number of deterministic pseudo-random
// mutations of it through LLVMFuzzerTestOneInput. Deterministic so that a
// failure reproduces on the next run; for open-ended fuzzing build the same
// target with clang's -fsanitize=fuzzer instead (see README.md).
//
// Usage: TARGET CORPUS_DIR [ITERATIONS] (default 20000; FUZZ_ITERATIONS in
// the environment overrides). A single file instead of a directory replays
// just that input.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc,
                                                          char*** argv);

namespace {

// Longest input the driver produces (libFuzzer's default -max_len is 4096
// too, but seeds may be longer and are kept whole).
constexpr size_t kMaxMutatedBytes = 4096;
// Whole-run watchdog: a hang fails the test instead of blocking it.
constexpr unsigned kWatchdogSeconds = 110;

// The input being run, for the crash handler (which may only use
// async-signal-safe calls, hence the raw buffer and precomputed path).
const uint8_t* g_current = nullptr;
size_t g_current_size = 0;
char g_crash_path[4096];

void OnFatalSignal(int sig) {
  static const char kMsg[] = "fuzz_driver: fatal signal; input saved to ";
  ssize_t ignored = write(2, kMsg, sizeof(kMsg) - 1);
  ignored = write(2, g_crash_path, strlen(g_crash_path));
  ignored = write(2, "\n", 1);
  int fd = open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0 && g_current != nullptr) {
    ignored = write(fd, g_current, g_current_size);
    close(fd);
  }
  (void)ignored;
  signal(sig, SIG_DFL);
  raise(sig);
}

void InstallCrashHandler() {
  const char* dir = getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  if (dir == nullptr) dir = getenv("TMPDIR");
  if (dir == nullptr) dir = "/tmp";
  snprintf(g_crash_path, sizeof(g_crash_path), "%s/crash-input", dir);
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGALRM}) {
    signal(sig, OnFatalSignal);
  }
}

void Run(const std::string& input) {
  g_current = reinterpret_cast<const uint8_t*>(input.data());
  g_current_size = input.size();
  LLVMFuzzerTestOneInput(g_current, g_current_size);
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return true;
}

std::vector<std::string> LoadCorpus(const std::string& path) {
  std::vector<std::string> corpus;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    fprintf(stderr, "fuzz_driver: cannot stat corpus %s\n", path.c_str());
    exit(2);
  }
  std::vector<std::string> files;
  if (S_ISDIR(st.st_mode)) {
    DIR* dir = opendir(path.c_str());
    if (dir == nullptr) {
      fprintf(stderr, "fuzz_driver: cannot open corpus %s\n", path.c_str());
      exit(2);
    }
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] == '.') continue;
      files.push_back(path + "/" + entry->d_name);
    }
    closedir(dir);
    // readdir order varies between file systems; sort for determinism.
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  for (const std::string& file : files) {
    std::string data;
    if (!ReadFile(file, &data)) {
      fprintf(stderr, "fuzz_driver: cannot read %s\n", file.c_str());
      exit(2);
    }
    corpus.push_back(std::move(data));
  }
  return corpus;
}

// Bytes that often sit on parser boundaries.
constexpr uint8_t kInteresting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, '%', ';',
                                    '=',  '\n', '"',  '{',  '}',  ':', '?'};

std::string Mutate(const std::vector<std::string>& corpus,
                   std::mt19937_64& rng) {
  auto below = [&rng](size_t n) -> size_t { return n == 0 ? 0 : rng() % n; };
  std::string data =
      corpus.empty() ? std::string() : corpus[below(corpus.size())];
  int rounds = 1 + static_cast<int>(below(4));
  for (int i = 0; i < rounds; ++i) {
    switch (below(9)) {
      case 0:  // flip a bit
        if (!data.empty()) data[below(data.size())] ^= 1 << below(8);
        break;
      case 1:  // random byte
        if (!data.empty()) data[below(data.size())] = static_cast<char>(rng());
        break;
      case 2:  // interesting byte
        if (!data.empty()) {
          data[below(data.size())] =
              static_cast<char>(kInteresting[below(sizeof(kInteresting))]);
        }
        break;
      case 3: {  // insert random bytes
        std::string chunk(1 + below(8), '\0');
        for (char& c : chunk) c = static_cast<char>(rng());
        data.insert(below(data.size() + 1), chunk);
        break;
      }
      case 4:  // erase a range
        if (!data.empty()) {
          size_t at = below(data.size());
          data.erase(at, 1 + below(std::min<size_t>(16, data.size() - at)));
        }
        break;
      case 5:  // duplicate a range
        if (!data.empty()) {
          size_t at = below(data.size());
          std::string chunk = data.substr(at, 1 + below(32));
          data.insert(below(data.size() + 1), chunk);
        }
        break;
      case 6:  // truncate
        data.resize(below(data.size() + 1));
        break;
      case 7:  // splice with another seed
        if (!corpus.empty()) {
          const std::string& other = corpus[below(corpus.size())];
          data = data.substr(0, below(data.size() + 1)) +
                 other.substr(below(other.size() + 1));
        }
        break;
      default: {  // overwrite with an extreme 32-bit value (lengths, ids)
        if (data.size() >= 4) {
          static constexpr uint32_t kValues[] = {
              0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x4000, 0x10000};
          uint32_t v = kValues[below(sizeof(kValues) / sizeof(kValues[0]))];
          size_t at = below(data.size() - 3);
          for (int b = 0; b < 4; ++b)
            data[at + b] = static_cast<char>(v >> (24 - 8 * b));
        }
        break;
      }
    }
  }
  if (data.size() > kMaxMutatedBytes) data.resize(kMaxMutatedBytes);
  return data;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE [ITERATIONS]\n", argv[0]);
    return 2;
  }
  long iterations = argc > 2 ? atol(argv[2]) : 20000;
  if (const char* env = getenv("FUZZ_ITERATIONS")) iterations = atol(env);
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  InstallCrashHandler();
  alarm(kWatchdogSeconds);

  std::vector<std::string> corpus = LoadCorpus(argv[1]);
  for (const std::string& input : corpus) Run(input);
  // Fixed seed: the same mutations every run, so failures reproduce.
  std::mt19937_64 rng(0x6873'6d64'6675'7a7aULL);
  for (long i = 0; i < iterations; ++i) Run(Mutate(corpus, rng));
  g_current = nullptr;
  printf("fuzz_driver: %zu seeds and %ld mutations ran without a crash\n",
         corpus.size(), iterations);
  return 0;
}
