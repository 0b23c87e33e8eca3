// The HTTP API's decoders, its token check, and its document: docs/api.yaml lists exactly the
// routes the server registers and the fields its decoders accept.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "fcvm/api/requests.hpp"
#include "fcvm/api/server.hpp"
#include "fcvm/api/token.hpp"

namespace fcvm {
namespace {

YAML::Node api_doc() { return YAML::LoadFile(std::string(FCVM_SOURCE_DIR) + "/docs/api.yaml"); }

TEST(ApiDoc, ListsExactlyTheServersRoutes) {
  std::set<std::string> documented, served;
  for (const auto& path : api_doc()["paths"]) {
    for (const auto& op : path.second) {
      auto method = op.first.as<std::string>();
      if (method == "parameters") continue;
      for (auto& c : method) c = static_cast<char>(std::toupper(c));
      documented.insert(method + " " + path.first.as<std::string>());
    }
  }
  for (const auto& r : api::routes()) served.insert(r.method + " " + r.path);
  EXPECT_EQ(documented, served);
  EXPECT_GE(served.size(), 25u);
}

// The fields the decoder names as known (its error for an unknown one lists them).
std::set<std::string> known_fields(const Result<int>& unused, const std::string& message) {
  (void)unused;
  std::set<std::string> out;
  auto start = message.find("(known: ");
  EXPECT_NE(start, std::string::npos) << message;
  std::string list = message.substr(start + 8, message.rfind(')') - start - 8);
  size_t pos = 0;
  while (pos < list.size()) {
    auto comma = list.find(", ", pos);
    out.insert(list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) break;
    pos = comma + 2;
  }
  return out;
}

std::set<std::string> doc_fields(const std::string& schema) {
  std::set<std::string> out;
  for (const auto& p : api_doc()["components"]["schemas"][schema]["properties"]) {
    out.insert(p.first.as<std::string>());
  }
  return out;
}

TEST(ApiDoc, ListsExactlyTheFieldsTheDecodersTake) {
  auto create = api::parse_create_vm(R"({"image":"x","zzz":1})");
  ASSERT_FALSE(create);
  EXPECT_EQ(known_fields(0, create.error().message()), doc_fields("CreateVm"));
  auto clone = api::parse_clone_vm(R"({"zzz":1})");
  ASSERT_FALSE(clone);
  EXPECT_EQ(known_fields(0, clone.error().message()), doc_fields("Clone"));
  auto exec = api::parse_exec(R"({"cmd":["x"],"zzz":1})");
  ASSERT_FALSE(exec);
  EXPECT_EQ(known_fields(0, exec.error().message()), doc_fields("Exec"));
}

TEST(ApiRequests, CreateMapsToTheCliRequest) {
  auto c = api::parse_create_vm(
      R"({"image":"oci-archive:/i.tar","cmd":["sh","-c","x"],"name":"a","mem":512,"cpu":"1",
          "env":{"A":"1"},"labels":["k=v"],"publish":["8080:80"],"jailer":false,"rm":true,
          "ttl":30,"wait_ready":"mode=agent","map":["/d:/d"]})");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->request.image_and_command,
            (std::vector<std::string>{"oci-archive:/i.tar", "sh", "-c", "x"}));
  EXPECT_EQ(c->request.mem, "512");
  EXPECT_EQ(c->request.cpu, "1");
  EXPECT_EQ(c->request.env, std::vector<std::string>{"A=1"});
  EXPECT_EQ(c->request.labels, std::vector<std::string>{"k=v"});
  EXPECT_EQ(c->request.jailer, "off");
  EXPECT_EQ(c->request.ttl, "30");
  EXPECT_TRUE(c->request.detach);
  EXPECT_TRUE(c->rm);
}

TEST(ApiRequests, BadInputNamesTheFieldAndValue) {
  struct Case {
    const char* body;
    const char* says;
  } cases[] = {
      {"", "not valid JSON"},
      {"[1]", "must be a JSON object"},
      {R"({"cmd":["x"]})", "missing \"image\""},
      {R"({"image":7})", "invalid \"image\": 7"},
      {R"({"image":"x","mem":1.5})", "invalid \"mem\": 1.5"},
      {R"({"image":"x","cmd":"ls"})", "invalid \"cmd\": \"ls\""},
      {R"({"image":"x","env":{"A":1}})", "invalid \"env\""},
      {R"({"image":"x","rm":"yes"})", "invalid \"rm\": \"yes\""},
      {R"({"image":"x","rm":true,"restart":"always"})", "conflict"},
      {R"({"image":"x\u0000y"})", "NUL"},
  };
  for (const auto& c : cases) {
    auto r = api::parse_create_vm(c.body);
    ASSERT_FALSE(r) << c.body;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput) << c.body;
    EXPECT_NE(r.error().message().find(c.says), std::string::npos)
        << c.body << " -> " << r.error().message();
  }
  EXPECT_FALSE(api::parse_exec(R"({"cmd":[]})"));
  EXPECT_FALSE(api::parse_exec(R"({"cmd":["x"],"env":["NOEQUALS"]})"));
  EXPECT_FALSE(api::parse_exec(R"({"cmd":["x"],"workdir":"rel"})"));
  EXPECT_FALSE(api::parse_exec(R"({"cmd":["x"],"rows":0,"cols":80})"));
  auto e = api::parse_exec(R"({"cmd":["x"],"stdin":true,"tty":true,"rows":40,"cols":100})");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->request.interactive && e->request.tty);
  ASSERT_TRUE(e->size);
  EXPECT_EQ(e->size->rows, 40);
  EXPECT_EQ(api::parse_signal("", "TERM").value(), "TERM");
  EXPECT_EQ(api::parse_signal(R"({"signal":"SIGKILL"})", "TERM").value(), "SIGKILL");
  EXPECT_FALSE(api::parse_signal(R"({"signal":"NOPE"})", "TERM"));
  EXPECT_FALSE(api::parse_resize(R"({"rows":10})"));
  EXPECT_EQ(api::parse_resize(R"({"rows":10,"cols":20})").value().cols, 20);
  EXPECT_FALSE(api::parse_snapshot_create(R"({"name":"../x"})"));
  EXPECT_FALSE(api::parse_ttl(R"({"seconds":-1})"));
  EXPECT_EQ(api::parse_ttl(R"({"seconds":0})").value(), 0);
  EXPECT_FALSE(api::query_bool("all", "yes", false));
  EXPECT_TRUE(api::query_bool("all", "", true).value());
  EXPECT_FALSE(api::query_int("timeout", "9999", 0, 3600));
}

TEST(ApiRequests, ListenAddresses) {
  auto unix_path = api::parse_listen("unix:/run/x.sock", false);
  ASSERT_TRUE(unix_path);
  EXPECT_FALSE(unix_path->tcp);
  EXPECT_EQ(unix_path->path, "/run/x.sock");
  EXPECT_EQ(api::parse_listen("/run/y.sock", false).value().path, "/run/y.sock");
  auto lo = api::parse_listen("127.0.0.1:0", false);
  ASSERT_TRUE(lo);
  EXPECT_TRUE(lo->tcp);
  EXPECT_EQ(lo->port, 0);
  EXPECT_TRUE(api::parse_listen("[::1]:8765", false));
  EXPECT_EQ(api::parse_listen("localhost:1", false).value().host, "127.0.0.1");
  for (const char* remote : {"0.0.0.0:8765", "10.1.2.3:80", "[::]:80"}) {
    auto r = api::parse_listen(remote, false);
    ASSERT_FALSE(r) << remote;
    EXPECT_NE(r.error().message().find("--allow-remote"), std::string::npos);
    EXPECT_TRUE(api::parse_listen(remote, true)) << remote;
  }
  for (const char* bad :
       {"", "unix:", "unix:rel", "host", "example.com:80", "127.0.0.1:70000", "127.0.0.1:x"}) {
    EXPECT_FALSE(api::parse_listen(bad, true)) << bad;
  }
}

TEST(ApiToken, MadeOnceWithMode0600AndComparedWhole) {
  char dir[] = "/tmp/fcvm-token.XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/api-token";
  auto t = api::ensure_token(path);
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->size(), 64u);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(api::ensure_token(path).value(), *t);  // kept
  EXPECT_TRUE(api::authorized("Bearer " + *t, *t));
  EXPECT_FALSE(api::authorized("Bearer " + t->substr(0, 63), *t));
  EXPECT_FALSE(api::authorized("Bearer " + *t + "0", *t));
  EXPECT_FALSE(api::authorized("bearer " + *t, *t));
  EXPECT_FALSE(api::authorized(*t, *t));
  EXPECT_FALSE(api::authorized("", *t));
  auto rotated = api::rotate_token(path);
  ASSERT_TRUE(rotated);
  EXPECT_NE(*rotated, *t);
  EXPECT_EQ(api::read_token(path).value(), *rotated);
  ::chmod(path.c_str(), 0644);
  EXPECT_FALSE(api::ensure_token(path));  // readable by others: refused, not used
  ::unlink(path.c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace fcvm
