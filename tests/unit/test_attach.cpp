#include <gtest/gtest.h>

#include "fcvm/vm/attach.hpp"
#include "fcvm/vm/control_proto.hpp"

using namespace fcvm;

TEST(DetachKeys, ParsesPodmanSpellings) {
  EXPECT_EQ(*vm::parse_detach_keys(vm::k_default_detach_keys), std::string("\x10\x11"));
  EXPECT_EQ(*vm::parse_detach_keys("ctrl-a,x"), std::string("\x01x"));
  EXPECT_EQ(*vm::parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_"),
            std::string("\x00\x1b\x1c\x1d\x1e\x1f", 6));
  EXPECT_EQ(*vm::parse_detach_keys(""), "");
  for (const char* bad : {"ctrl-", "ctrl-A", "ctrl-1", "ab", "ctrl-p,,ctrl-q", "alt-x"}) {
    auto r = vm::parse_detach_keys(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message().find(std::string("\"") + bad + "\""), std::string::npos)
        << r.error().message();
  }
}

TEST(DetachKeys, PassesEverythingButTheSequence) {
  vm::DetachKeys keys("\x10\x11");
  bool detached = false;
  EXPECT_EQ(keys.feed("ls\r", detached), "ls\r");
  EXPECT_FALSE(detached);
  // ^P alone is held until the next key decides; ^P then x passes both.
  EXPECT_EQ(keys.feed("a\x10", detached), "a");
  EXPECT_FALSE(detached);
  EXPECT_EQ(keys.feed("x", detached), "\x10x");
  EXPECT_FALSE(detached);
  // ^P ^P ^Q: the first ^P passes, the sequence begins again at the second.
  EXPECT_EQ(keys.feed("\x10\x10\x11tail", detached), "\x10");
  EXPECT_TRUE(detached);
  // Split across reads.
  EXPECT_EQ(keys.feed("b\x10", detached), "b");
  EXPECT_FALSE(detached);
  EXPECT_EQ(keys.feed("\x11", detached), "");
  EXPECT_TRUE(detached);
  // No sequence: no detaching.
  vm::DetachKeys none("");
  EXPECT_EQ(none.feed("\x10\x11", detached), "\x10\x11");
  EXPECT_FALSE(detached);
  // One key.
  vm::DetachKeys one("\x1d");
  EXPECT_EQ(one.feed("ab\x1d", detached), "ab");
  EXPECT_TRUE(detached);
}

TEST(ControlProto, DetachRoundTrips) {
  auto r =
      vm::control::decode_request(vm::control::encode(vm::control::Request(vm::control::Detach{})));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(std::holds_alternative<vm::control::Detach>(*r));
}
