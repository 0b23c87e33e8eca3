#pragma once
// A scratch directory for one unit-test process, made on first use under testing::TempDir()
// and removed with everything in it when that process exits, so the tier leaves nothing behind.
#include <string>

namespace fcvm::test {

// The directory; fails the process if it cannot be made.
const std::string& scratch_dir();
// A fresh path inside it: PREFIX-N (N counts up per process). Nothing is created.
std::string scratch_path(const std::string& prefix);

}  // namespace fcvm::test
