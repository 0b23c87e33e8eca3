#include <gtest/gtest.h>

#include "fcvm/vmm/firecracker/version.hpp"

using fcvm::ErrorCode;
using namespace fcvm::vmm::firecracker;

TEST(FirecrackerVersion, ParsesWhatFirecrackerPrintsAndAnswers) {
  EXPECT_EQ(*parse_version("Firecracker v1.14.2"), (Version{1, 14, 2}));  // --version
  EXPECT_EQ(*parse_version("1.16.1"), (Version{1, 16, 1}));               // GET / vmm_version
  EXPECT_EQ(*parse_version("v1.10.0-dev"), (Version{1, 10, 0}));
  EXPECT_EQ(parse_version("v1.14.2").value().to_string(), "v1.14.2");
}

TEST(FirecrackerVersion, RefusesTextThatIsNoVersionNamingIt) {
  for (const char* bad : {"", "1.14", "abc", "1.14.2x", "v1..2", "Firecracker", "1.-1.0"}) {
    auto v = parse_version(bad);
    ASSERT_FALSE(v) << bad;
    EXPECT_EQ(v.error().code(), ErrorCode::kInvalidInput) << bad;
    EXPECT_NE(v.error().message().find(std::string("'") + bad + "'"), std::string::npos) << bad;
  }
}

TEST(FirecrackerVersion, SupportsV110ToV116Only) {
  EXPECT_TRUE(check_supported({1, 10, 0}));
  EXPECT_TRUE(check_supported({1, 14, 2}));
  EXPECT_TRUE(check_supported({1, 16, 1}));
  for (Version v : {Version{1, 9, 0}, Version{1, 17, 0}, Version{2, 0, 0}, Version{0, 25, 0}}) {
    auto r = check_supported(v);
    ASSERT_FALSE(r) << v.to_string();
    EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(r.error().message(),
              "Firecracker " + v.to_string() + " is not supported: fcvm supports v1.10 to v1.16");
  }
}

TEST(FirecrackerVersion, VsockOverrideFromV116) {
  EXPECT_FALSE(has_vsock_override({1, 14, 2}));
  EXPECT_FALSE(has_vsock_override({1, 15, 9}));
  EXPECT_TRUE(has_vsock_override({1, 16, 0}));
}
