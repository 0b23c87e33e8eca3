#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fcvm/net/publish.hpp"

using namespace fcvm;
using net::parse_publish;

TEST(Publish, DefaultsToLoopbackAndTcp) {
  auto m = parse_publish("8080:80");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->host_ip, "127.0.0.1");
  EXPECT_EQ(m->host_port, 8080);
  EXPECT_EQ(m->guest_port, 80);
  EXPECT_EQ(m->proto, net::Proto::kTcp);
  EXPECT_EQ(m->to_string(), "127.0.0.1:8080:80/tcp");
}

TEST(Publish, AddressAndProtocol) {
  auto m = parse_publish("0.0.0.0:5353:53/udp");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->host_ip, "0.0.0.0");
  EXPECT_EQ(m->proto, net::Proto::kUdp);
}

TEST(Publish, RejectsMalformedAndNamesTheValue) {
  for (const char* bad : {"", "80", "a:80", "8080:b", "0:80", "8080:65536", "1.2.3:80:80",
                          "8080:80/sctp", "1:2:3:4", "-1:80", "8080:80/"}) {
    auto m = parse_publish(bad);
    ASSERT_FALSE(m) << bad;
    EXPECT_EQ(m.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(m.error().message().find(std::string("\"") + bad + "\""), std::string::npos)
        << m.error().message();
  }
}

TEST(Publish, DuplicateHostPortsAreRejected) {
  std::vector<net::PortMapping> ports = {*parse_publish("8080:80"), *parse_publish("8080:81")};
  EXPECT_FALSE(net::check_unique(ports));
  ports = {*parse_publish("8080:80"), *parse_publish("8080:80/udp")};
  EXPECT_TRUE(net::check_unique(ports));
  ports = {*parse_publish("0.0.0.0:8080:80"), *parse_publish("127.0.0.1:8080:81")};
  EXPECT_FALSE(net::check_unique(ports));
}

TEST(Publish, TakenHostPortIsDetected) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  auto m = parse_publish(std::to_string(port) + ":80");
  ASSERT_TRUE(m);
  auto r = net::check_host_ports_free({*m});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("already in use"), std::string::npos);
  ::close(fd);
  EXPECT_TRUE(net::check_host_ports_free({*m}));
}
