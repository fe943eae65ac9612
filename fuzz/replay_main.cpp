// Runs a fuzz target's LLVMFuzzerTestOneInput on every file in the
// directories given, without libFuzzer: the seed corpus and the crashes
// found earlier (fuzz/regressions/<target>) become regression tests in the
// ordinary build and under the sanitizers (ctest: fuzz_replay_<target>).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// Defined by targets that keep state across inputs (a node, a reactor):
// releases it before main returns.
extern "C" __attribute__((weak)) void relay_fuzz_teardown();

int main(int argc, char** argv) {
  size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    if (!std::filesystem::is_directory(argv[i], ec)) {
      if (i == 1) { // the seed corpus must be there; regressions may not
        std::fprintf(stderr, "no corpus directory %s\n", argv[i]);
        return 1;
      }
      continue;
    }
    std::vector<std::filesystem::path> files;
    for (auto& entry : std::filesystem::directory_iterator(argv[i]))
      if (entry.is_regular_file())
        files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (auto& path : files) {
      std::ifstream in{path, std::ios::binary};
      std::vector<uint8_t> data{std::istreambuf_iterator<char>(in),
                                std::istreambuf_iterator<char>()};
      std::fprintf(stderr, "replay %s (%zu bytes)\n", path.c_str(),
                   data.size());
      LLVMFuzzerTestOneInput(data.data(), data.size());
      ++count;
    }
  }
  if (relay_fuzz_teardown != nullptr)
    relay_fuzz_teardown();
  std::printf("replayed %zu inputs\n", count);
  return count > 0 ? 0 : 1;
}
