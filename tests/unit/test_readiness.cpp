#include <gtest/gtest.h>

#include "fcvm/readiness/gate.hpp"

using namespace fcvm;
using readiness::Mode;
using readiness::parse_gate;

TEST(Readiness, ParsesEveryMode) {
  auto http = parse_gate("mode=http,url=http://127.0.0.1:8080/health,status=204,timeout=30");
  ASSERT_TRUE(http) << http.error().message();
  EXPECT_EQ(http->mode, Mode::kHttp);
  EXPECT_EQ(http->http.host, "127.0.0.1");
  EXPECT_EQ(http->http.port, 8080);
  EXPECT_EQ(http->http.path, "/health");
  EXPECT_EQ(http->status, 204);
  EXPECT_EQ(http->timeout_s, 30);
  EXPECT_TRUE(http->runs_in_vm());
  auto plain = parse_gate("mode=http,url=http://localhost");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->http.port, 80);
  EXPECT_EQ(plain->http.path, "/");
  EXPECT_EQ(plain->status, 200);
  EXPECT_EQ(plain->timeout_s, 60);
  auto log = parse_gate("timeout=5,mode=log,pattern=listening on [0-9]+, ready");
  ASSERT_TRUE(log);
  EXPECT_EQ(log->pattern, "listening on [0-9]+, ready");
  auto exec = parse_gate("mode=exec,cmd=test -f /tmp/a, -f /tmp/b");
  ASSERT_TRUE(exec);
  EXPECT_EQ(exec->probe_argv(),
            (std::vector<std::string>{"sh", "-c", "test -f /tmp/a, -f /tmp/b"}));
  EXPECT_FALSE(exec->runs_in_vm());
  EXPECT_EQ(parse_gate("mode=vsock")->mode, Mode::kAgent);
  EXPECT_EQ(parse_gate("mode=agent")->mode, Mode::kAgent);
}

TEST(Readiness, RejectsBadSpecsNamingThem) {
  for (const char* bad :
       {"", "mode=tcp", "mode=http", "mode=http,url=https://x/", "mode=log", "mode=exec",
        "mode=log,pattern=([", "mode=agent,timeout=0", "mode=agent,colour=red",
        "mode=http,url=http://x:99999/", "mode=http,url=http://a b/",
        "mode=http,url=http://x/,status=42", "mode"}) {
    auto g = parse_gate(bad);
    ASSERT_FALSE(g) << bad;
    EXPECT_EQ(g.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(g.error().message().find("--wait-ready"), std::string::npos);
  }
}

TEST(Readiness, HttpProbeIsABashScript) {
  auto g = parse_gate("mode=http,url=http://127.0.0.1:80/x");
  ASSERT_TRUE(g);
  auto argv = g->probe_argv();
  ASSERT_EQ(argv.size(), 3u);
  EXPECT_EQ(argv[0], "bash");
  EXPECT_NE(argv[2].find("/dev/tcp/127.0.0.1/80"), std::string::npos);
  EXPECT_NE(argv[2].find("GET /x HTTP/1.0"), std::string::npos);
  EXPECT_NE(argv[2].find("= 200 ]"), std::string::npos);
}

TEST(Readiness, LogMatcherSeesLinesAcrossChunks) {
  readiness::LogMatcher m("server ready on port [0-9]+");
  EXPECT_FALSE(m.feed("booting\nserver re"));
  EXPECT_FALSE(m.feed("ady on port x\n"));
  EXPECT_FALSE(m.feed("server ready on po"));
  EXPECT_TRUE(m.feed("rt 80\n"));
}
