// The wire format shared by fcvm and fc-agent: framing and control messages.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/unique_fd.hpp"

using namespace fcvm;
using namespace fcvm::agent_proto;

namespace {

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}

Plan full_plan() {
  Plan p;
  p.vm_id = "0123abcd";
  p.name = "web1";
  p.hostname = "web1";
  p.image.ref = "127.0.0.1:5055/library/nginx:1.22";
  p.image.archive_serial = "fcvm-image";
  p.image.archive_format = "docker-archive";
  p.image.archive_size = 1234567;
  p.image.insecure_registries = {"registry.lan:5000"};
  p.image.mirrors = {{"127.0.0.1:5055", "10.0.2.2:5055", true}};
  p.command = {"nginx", "-g", "daemon off;"};
  p.entrypoint = {"/docker-entrypoint.sh"};
  p.env = {"A=1", "B=two words"};
  p.workdir = "/srv";
  p.network.interface = "eth1";
  p.network.address = "10.0.2.15/24";
  p.network.gateway = "10.0.2.2";
  p.network.dns = {"10.0.2.3", "1.1.1.1"};
  p.network.mtu = 65520;
  p.time_unix_ns = 1'700'000'000'123'456'789;
  p.stop_timeout_s = 3;
  p.rng_seed_hex = "00ff10ab";
  return p;
}

}  // namespace

TEST(AgentFrame, EncodeLayout) {
  auto bytes = encode(Kind::kStdout, 7, "hi");
  EXPECT_EQ(bytes, be32(7) + std::string(1, '\x02') + be32(7) + "hi");
  EXPECT_EQ(bytes.size(), k_header_size + 2);
}

TEST(AgentFrame, RoundTripEveryKind) {
  Decoder d;
  for (auto kind : {Kind::kControl, Kind::kStdout, Kind::kStderr, Kind::kStdin, Kind::kStdinEof}) {
    d.feed(encode(kind, 42, kind == Kind::kStdinEof ? "" : "payload"));
  }
  for (auto kind : {Kind::kControl, Kind::kStdout, Kind::kStderr, Kind::kStdin, Kind::kStdinEof}) {
    auto f = d.next();
    ASSERT_TRUE(f);
    ASSERT_TRUE(*f);
    EXPECT_EQ((*f)->kind, kind);
    EXPECT_EQ((*f)->stream, 42u);
    EXPECT_EQ((*f)->payload, kind == Kind::kStdinEof ? "" : "payload");
  }
  auto none = d.next();
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST(AgentFrame, PartialFeedsByteByByte) {
  std::string binary("\0\x01\xff\n", 4);
  auto bytes = encode(Kind::kControl, 0, "{\"type\":\"ready\"}") + encode(Kind::kStderr, 3, binary);
  Decoder d;
  std::vector<Frame> frames;
  for (char c : bytes) {
    d.feed(std::string_view(&c, 1));
    auto f = d.next();
    ASSERT_TRUE(f);
    if (*f) frames.push_back(**f);
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].payload, "{\"type\":\"ready\"}");
  EXPECT_EQ(frames[1].kind, Kind::kStderr);
  EXPECT_EQ(frames[1].stream, 3u);
  EXPECT_EQ(frames[1].payload, binary);
}

TEST(AgentFrame, ManyFramesCompactTheBuffer) {
  Decoder d;
  std::string chunk(40000, 'x');
  for (int i = 0; i < 20; ++i) {
    d.feed(encode(Kind::kStdout, 0, chunk));
    auto f = d.next();
    ASSERT_TRUE(f && *f);
    EXPECT_EQ((*f)->payload.size(), chunk.size());
  }
  EXPECT_LT(d.buffered(), 200000u);
}

TEST(AgentFrame, MaximumPayloadAccepted) {
  Decoder d;
  d.feed(encode(Kind::kStdout, 0, std::string(k_max_payload, 'a')));
  auto f = d.next();
  ASSERT_TRUE(f && *f);
  EXPECT_EQ((*f)->payload.size(), k_max_payload);
}

TEST(AgentFrame, CorruptLengthRejected) {
  for (uint32_t length : {0u, 4u, static_cast<uint32_t>(k_max_payload + 6), 0xffffffffu}) {
    Decoder d;
    d.feed(be32(length) + std::string(1, '\x01') + be32(0));
    auto f = d.next();
    ASSERT_FALSE(f) << "length " << length;
    EXPECT_EQ(f.error().code(), ErrorCode::kProtocol);
  }
}

TEST(AgentFrame, CorruptKindRejected) {
  for (char kind : {'\0', '\x06', '\x7f', '\xff'}) {
    Decoder d;
    d.feed(be32(5) + std::string(1, kind) + be32(0));
    auto f = d.next();
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code(), ErrorCode::kProtocol);
  }
}

TEST(AgentFrame, BlockingHelpersOverASocketPair) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  ASSERT_TRUE(write_frame(a.get(), Kind::kStdin, 5, "abc"));
  ASSERT_TRUE(write_frame(a.get(), Kind::kStdinEof, 5, ""));
  auto f1 = read_frame(b.get());
  ASSERT_TRUE(f1);
  EXPECT_EQ(f1->kind, Kind::kStdin);
  EXPECT_EQ(f1->payload, "abc");
  auto f2 = read_frame(b.get());
  ASSERT_TRUE(f2);
  EXPECT_EQ(f2->kind, Kind::kStdinEof);
  EXPECT_TRUE(f2->payload.empty());
  a.reset();
  auto eof = read_frame(b.get());
  ASSERT_FALSE(eof);
  EXPECT_FALSE(write_frame(b.get(), Kind::kStdout, 0, std::string(k_max_payload + 1, 'x')));
}

TEST(AgentMessages, PlanRoundTripAllFields) {
  auto p = full_plan();
  auto msg = parse_control(encode_plan(p));
  ASSERT_TRUE(msg);
  EXPECT_EQ((*msg)["type"], "plan");
  EXPECT_EQ((*msg)["plan"]["version"], k_protocol_version);
  auto back = plan_from_json((*msg)["plan"]);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->version, k_protocol_version);
  EXPECT_EQ(back->vm_id, p.vm_id);
  EXPECT_EQ(back->name, p.name);
  EXPECT_EQ(back->hostname, p.hostname);
  EXPECT_EQ(back->image.ref, p.image.ref);
  EXPECT_EQ(back->image.archive_serial, p.image.archive_serial);
  EXPECT_EQ(back->image.archive_format, p.image.archive_format);
  EXPECT_EQ(back->image.archive_size, p.image.archive_size);
  EXPECT_EQ(back->image.insecure_registries, p.image.insecure_registries);
  ASSERT_EQ(back->image.mirrors.size(), 1u);
  EXPECT_EQ(back->image.mirrors[0].prefix, "127.0.0.1:5055");
  EXPECT_EQ(back->image.mirrors[0].location, "10.0.2.2:5055");
  EXPECT_TRUE(back->image.mirrors[0].insecure);
  EXPECT_EQ(back->command, p.command);
  EXPECT_EQ(back->entrypoint, p.entrypoint);
  EXPECT_EQ(back->env, p.env);
  EXPECT_EQ(back->workdir, p.workdir);
  EXPECT_EQ(back->network.interface, "eth1");
  EXPECT_EQ(back->network.address, p.network.address);
  EXPECT_EQ(back->network.gateway, p.network.gateway);
  EXPECT_EQ(back->network.dns, p.network.dns);
  EXPECT_EQ(back->network.mtu, 65520);
  EXPECT_EQ(back->time_unix_ns, p.time_unix_ns);
  EXPECT_EQ(back->stop_timeout_s, 3);
  EXPECT_EQ(back->rng_seed_hex, "00ff10ab");
}

TEST(AgentMessages, PlanUlimits) {
  Plan p;
  p.vm_id = "x";
  p.image.ref = "busybox";
  p.ulimits = {{"nofile", 1024, 4096}, {"core", -1, -1}};
  auto msg = parse_control(encode_plan(p));
  ASSERT_TRUE(msg);
  auto back = plan_from_json((*msg)["plan"]);
  ASSERT_TRUE(back) << back.error().message();
  ASSERT_EQ(back->ulimits.size(), 2u);
  EXPECT_EQ(back->ulimits[0].name, "nofile");
  EXPECT_EQ(back->ulimits[0].soft, 1024);
  EXPECT_EQ(back->ulimits[0].hard, 4096);
  EXPECT_EQ(back->ulimits[1].soft, -1);
  for (const char* bad :
       {R"([{"name":"files","soft":1,"hard":1}])", R"([{"name":"nofile","soft":-5,"hard":1}])",
        R"([{"name":"nofile","soft":1e30,"hard":1}])", R"([{"name":"nofile","soft":1}])"}) {
    auto j = (*msg)["plan"];
    j["ulimits"] = nlohmann::json::parse(bad);
    EXPECT_FALSE(plan_from_json(j)) << bad;
  }
}

TEST(AgentMessages, PlanMinimalUsesDefaults) {
  auto j = nlohmann::json::parse(R"({"version":1,"vm_id":"x","image":{"ref":"busybox"}})");
  auto p = plan_from_json(j);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_TRUE(p->image.archive_serial.empty());
  EXPECT_EQ(p->image.archive_size, 0);
  EXPECT_EQ(p->network.interface, "eth0");
  EXPECT_EQ(p->network.mtu, 1500);
  EXPECT_EQ(p->stop_timeout_s, 10);
  EXPECT_TRUE(p->rng_seed_hex.empty());
  EXPECT_FALSE(to_json(*p)["image"].contains("archive"));
  EXPECT_FALSE(to_json(*p).contains("rng_seed"));
}

TEST(AgentMessages, PlanErrors) {
  for (const char* text : {
           R"({"vm_id":"x","image":{"ref":"a"}})",                // no version
           R"({"version":1,"image":{"ref":"a"}})",                // no vm_id
           R"({"version":1,"vm_id":"x"})",                        // no image
           R"({"version":1,"vm_id":"x","image":{}})",             // no ref
           R"({"version":"1","vm_id":"x","image":{"ref":"a"}})",  // version not a number
           R"({"version":1,"vm_id":"x","image":{"ref":"a"},"env":"A=1"})",
           R"({"version":1,"vm_id":"x","image":{"ref":"a","archive":{}}})",
           // Numbers json would convert with undefined behaviour or wrap (found by
           // fuzz_mmds_response: a time of 1.7e21 ns): refused, never converted.
           R"({"version":1,"vm_id":"x","image":{"ref":"a"},"time_unix_ns":1700000000000000000000})",
           R"({"version":1,"vm_id":"x","image":{"ref":"a"},"stop_timeout_s":1e300})",
           R"({"version":1,"vm_id":"x","image":{"ref":"a"},"stop_timeout_s":2.5})",
           R"({"version":1,"vm_id":"x","image":{"ref":"a"},"network":{"mtu":4294967296}})",
           R"({"version":1,"vm_id":"x","image":{"ref":"a"},"rows":70000})",
           R"({"version":-1,"vm_id":"x","image":{"ref":"a"}})",
           R"({"version":1,"vm_id":"x","image":{"ref":"a","archive":{"serial":"s","size":1e20}}})",
       }) {
    auto p = plan_from_json(nlohmann::json::parse(text));
    ASSERT_FALSE(p) << text;
    EXPECT_EQ(p.error().code(), ErrorCode::kProtocol);
    EXPECT_NE(p.error().message().find("bad plan"), std::string::npos);
  }
}

TEST(AgentMessages, ParseControlErrors) {
  for (const char* text : {"", "not json", "[1,2]", "42", "{}", R"({"type":3})", R"({"type":null})",
                           R"({"type":"hello")"}) {
    auto m = parse_control(text);
    ASSERT_FALSE(m) << text;
    EXPECT_EQ(m.error().code(), ErrorCode::kProtocol);
  }
  auto ok = parse_control(R"({"type":"future_thing","x":1})");
  ASSERT_TRUE(ok);
  EXPECT_EQ((*ok)["type"], "future_thing");
}

TEST(AgentMessages, GuestMessagesEncode) {
  auto hello = parse_control(encode_hello({k_protocol_version, "fc-agent 0.1.0", 4711, "running"}));
  ASSERT_TRUE(hello);
  auto h = hello_from_json(*hello);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->version, k_protocol_version);
  EXPECT_EQ(h->agent, "fc-agent 0.1.0");
  EXPECT_EQ(h->uptime_ms, 4711);
  EXPECT_EQ(h->state, "running");
  // A host's hello (a request for a fresh hello) carries no state.
  EXPECT_FALSE(nlohmann::json::parse(encode_hello({1, "fcvm", 0, ""})).contains("state"));

  auto event = nlohmann::json::parse(encode_event({"image_ready", 1500, "busybox"}));
  EXPECT_EQ(event["type"], "event");
  EXPECT_EQ(event["name"], "image_ready");
  EXPECT_EQ(event["uptime_ms"], 1500);
  EXPECT_EQ(event["detail"], "busybox");
  EXPECT_EQ(nlohmann::json::parse(encode_ready())["type"], "ready");
  auto exit = nlohmann::json::parse(encode_exit({3, 137}));
  EXPECT_EQ(exit["stream"], 3);
  EXPECT_EQ(exit["code"], 137);
  auto error = nlohmann::json::parse(encode_error({"image", "pull failed"}));
  EXPECT_EQ(error["stage"], "image");
  EXPECT_EQ(error["message"], "pull failed");
  EXPECT_EQ(nlohmann::json::parse(encode_stop({7}))["timeout_s"], 7);
  EXPECT_EQ(nlohmann::json::parse(encode_log("hi"))["message"], "hi");
}

TEST(AgentMessages, InvalidUtf8DoesNotThrow) {
  std::string junk = "podman: \xff\xfe broken \xc3";
  std::string encoded;
  ASSERT_NO_THROW(encoded = encode_error({"image", junk}));
  auto m = parse_control(encoded);
  ASSERT_TRUE(m);
  EXPECT_NE((*m)["message"].get<std::string>().find("broken"), std::string::npos);
  ASSERT_NO_THROW(encode_log(junk));
}

TEST(AgentMessages, ExecRoundTripAndErrors) {
  Exec e;
  e.stream = 4;
  e.argv = {"sh", "-c", "echo hi"};
  e.env = {"X=1"};
  e.workdir = "/tmp";
  e.user = "1000:1000";
  e.tty = true;
  e.in_vm = true;
  auto m = parse_control(encode_exec(e));
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "exec");
  auto back = exec_from_json(*m);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->stream, 4u);
  EXPECT_EQ(back->argv, e.argv);
  EXPECT_EQ(back->env, e.env);
  EXPECT_EQ(back->workdir, "/tmp");
  EXPECT_EQ(back->user, "1000:1000");
  EXPECT_TRUE(back->tty);
  EXPECT_TRUE(back->in_vm);

  for (const char* text :
       {R"({"type":"exec","stream":0,"argv":["true"]})", R"({"type":"exec","stream":1,"argv":[]})",
        R"({"type":"exec","argv":["true"]})", R"({"type":"exec","stream":1,"argv":"true"})"}) {
    auto r = exec_from_json(nlohmann::json::parse(text));
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code(), ErrorCode::kProtocol);
  }
}

TEST(AgentMessages, ExecTerminalSize) {
  Exec e;
  e.stream = 1;
  e.argv = {"sh"};
  auto plain = parse_control(encode_exec(e));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->contains("rows"));  // optional: absent unless given
  e.tty = true;
  e.rows = 50;
  e.cols = 132;
  auto back = exec_from_json(*parse_control(encode_exec(e)));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->rows, 50);
  EXPECT_EQ(back->cols, 132);
  auto old = exec_from_json(nlohmann::json::parse(R"({"type":"exec","stream":1,"argv":["sh"]})"));
  ASSERT_TRUE(old);
  EXPECT_EQ(old->rows, 0);
  EXPECT_EQ(old->cols, 0);
  EXPECT_FALSE(exec_from_json(
      nlohmann::json::parse(R"({"type":"exec","stream":1,"argv":["sh"],"rows":70000})")));
}

TEST(AgentMessages, ExecErrorRoundTrip) {
  auto m = parse_control(encode_exec_error({3, "the container is not running"}));
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "exec_error");
  auto back = exec_error_from_json(*m);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->stream, 3u);
  EXPECT_EQ(back->message, "the container is not running");
  EXPECT_FALSE(exec_error_from_json(nlohmann::json::parse(R"({"type":"exec_error"})")));
}

TEST(AgentMessages, ResizeRoundTripAndErrors) {
  auto m = parse_control(encode_resize({2, 40, 120}));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->dump(), R"({"cols":120,"rows":40,"stream":2,"type":"resize"})");
  auto back = resize_from_json(*m);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->stream, 2u);
  EXPECT_EQ(back->rows, 40);
  EXPECT_EQ(back->cols, 120);
  // Stream 0: the main container's terminal (run -t).
  EXPECT_TRUE(
      resize_from_json(nlohmann::json::parse(R"({"type":"resize","stream":0,"rows":1,"cols":1})")));
  for (const char* text : {R"({"type":"resize","stream":1,"rows":1})",
                           R"({"type":"resize","stream":1,"rows":-1,"cols":1})",
                           R"({"type":"resize","stream":1,"rows":65536,"cols":1})",
                           R"({"type":"resize","stream":1,"rows":"24","cols":80})"}) {
    auto r = resize_from_json(nlohmann::json::parse(text));
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code(), ErrorCode::kProtocol);
  }
}

TEST(AgentMessages, SignalByNameOrNumber) {
  auto name = parse_control(encode_signal({5, "TERM"}));
  ASSERT_TRUE(name);
  EXPECT_EQ(name->dump(), R"({"signal":"TERM","stream":5,"type":"signal"})");
  auto number = parse_control(encode_signal({5, "9"}));
  ASSERT_TRUE(number);
  EXPECT_EQ((*number)["signal"], 9);  // a number on the wire
  auto back = signal_from_json(*number);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->stream, 5u);
  EXPECT_EQ(back->signal, "9");
  EXPECT_EQ(signal_from_json(*name)->signal, "TERM");
  // Stream 0: the container's main process (fcvm kill).
  auto main_stream =
      signal_from_json(nlohmann::json::parse(R"({"type":"signal","stream":0,"signal":"INT"})"));
  ASSERT_TRUE(main_stream);
  EXPECT_EQ(main_stream->stream, 0u);
  for (const char* text :
       {R"({"type":"signal","stream":1})", R"({"type":"signal","stream":1,"signal":""})",
        R"({"type":"signal","stream":1,"signal":-2})"}) {
    auto r = signal_from_json(nlohmann::json::parse(text));
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code(), ErrorCode::kProtocol);
  }
}
