// fc-agent's pure logic: channel selection from the kernel command line, guest configuration
// rendering, podman argv construction, the parsers of podman's output and of the /proc records
// behind exec signals.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "agent/logic/cmdline.hpp"
#include "agent/logic/exec.hpp"
#include "agent/logic/guest_config.hpp"
#include "agent/logic/mmds.hpp"
#include "agent/logic/oci.hpp"
#include "agent/logic/podman.hpp"

using namespace fcvm;
using namespace fcvm::agent;
using Argv = std::vector<std::string>;

TEST(AgentCmdline, DefaultIsTheSerialPort) {
  auto spec = channel_from_cmdline("console=ttyS0 reboot=t panic=-1 root=/dev/vda\n");
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->transport, Transport::kSerial);
  EXPECT_EQ(spec->name, "fcvm.agent");
  EXPECT_EQ(describe(*spec), "serial:fcvm.agent");
}

TEST(AgentCmdline, SerialVsockUnix) {
  auto serial = channel_from_cmdline("quiet fcvm.agent=serial:my.port rw");
  ASSERT_TRUE(serial);
  EXPECT_EQ(serial->transport, Transport::kSerial);
  EXPECT_EQ(serial->name, "my.port");
  auto vsock = channel_from_cmdline("fcvm.agent=vsock:1024\n");
  ASSERT_TRUE(vsock);
  EXPECT_EQ(vsock->transport, Transport::kVsock);
  EXPECT_EQ(vsock->port, 1024u);
  auto unix_spec = parse_channel_spec("unix:/tmp/a b/agent.sock");
  ASSERT_TRUE(unix_spec);
  EXPECT_EQ(unix_spec->transport, Transport::kUnix);
  EXPECT_EQ(unix_spec->path, "/tmp/a b/agent.sock");
}

TEST(AgentCmdline, LastOneWinsAndSimilarKeysIgnored) {
  auto spec = channel_from_cmdline(
      "fcvm.agent=serial:first xfcvm.agent=vsock:9 fcvm.agentx=vsock:8 fcvm.agent=vsock:5000");
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->transport, Transport::kVsock);
  EXPECT_EQ(spec->port, 5000u);
}

TEST(AgentCmdline, Errors) {
  for (const char* bad :
       {"fcvm.agent=", "fcvm.agent=serial", "fcvm.agent=serial:", "fcvm.agent=vsock:",
        "fcvm.agent=vsock:0", "fcvm.agent=vsock:-1", "fcvm.agent=vsock:12x",
        "fcvm.agent=vsock:4294967295", "fcvm.agent=tcp:1.2.3.4", "fcvm.agent=serial:../x"}) {
    auto spec = channel_from_cmdline(bad);
    ASSERT_FALSE(spec) << bad;
    EXPECT_EQ(spec.error().code(), ErrorCode::kInvalidInput);
  }
}

TEST(AgentNetwork, IpCommands) {
  agent_proto::NetworkSpec net;
  net.interface = "eth0";
  net.address = "10.0.2.15/24";
  net.gateway = "10.0.2.2";
  net.mtu = 65520;
  EXPECT_EQ(ip_commands(net),
            (std::vector<Argv>{{"link", "set", "lo", "up"},
                               {"link", "set", "eth0", "mtu", "65520", "up"},
                               {"addr", "replace", "10.0.2.15/24", "dev", "eth0"},
                               {"route", "replace", "default", "via", "10.0.2.2", "dev", "eth0"}}));
  net.address.clear();
  net.gateway.clear();
  EXPECT_EQ(ip_commands(net).size(), 2u);
}

TEST(AgentNetwork, Files) {
  EXPECT_EQ(render_resolv_conf({"10.0.2.3", "1.1.1.1"}),
            "# Written by fc-agent from the VM's plan.\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n");
  auto hosts = render_hosts("web1", "10.0.2.15/24");
  EXPECT_NE(hosts.find("127.0.0.1\tlocalhost\n"), std::string::npos);
  EXPECT_NE(hosts.find("10.0.2.15\tweb1\n"), std::string::npos);
  EXPECT_NE(render_hosts("web1", "").find("127.0.1.1\tweb1\n"), std::string::npos);
  EXPECT_EQ(render_hosts("", "10.0.2.15/24").find("10.0.2.15"), std::string::npos);
  EXPECT_EQ(address_without_prefix("fd00::2/64"), "fd00::2");
  EXPECT_EQ(address_without_prefix("10.0.0.1"), "10.0.0.1");
}

TEST(AgentRegistries, MirrorsAndInsecureRegistries) {
  agent_proto::ImageSpec image;
  image.ref = "127.0.0.1:5055/app:1";
  image.mirrors = {{"127.0.0.1:5055", "10.0.2.2:5055", true}};
  image.insecure_registries = {"registry.lan:5000", "registry.lan:5000"};
  EXPECT_EQ(render_registries_conf(image),
            "# Written by fc-agent from the VM's plan.\n\n"
            "[[registry]]\nprefix = \"127.0.0.1:5055\"\nlocation = \"10.0.2.2:5055\"\n"
            "insecure = true\n\n"
            "[[registry]]\nlocation = \"registry.lan:5000\"\ninsecure = true\n\n");
}

TEST(AgentRegistries, InsecurePrefixFoldsIntoItsMirror) {
  agent_proto::ImageSpec image;
  image.mirrors = {{"127.0.0.1:5055", "10.0.2.2:5055", false}};
  image.insecure_registries = {"127.0.0.1:5055"};
  auto conf = render_registries_conf(image);
  EXPECT_EQ(conf.find("[[registry]]"), conf.rfind("[[registry]]")) << conf;  // one entry
  EXPECT_NE(conf.find("insecure = true"), std::string::npos);
}

TEST(AgentRegistries, NothingToWriteAndQuoting) {
  EXPECT_EQ(render_registries_conf({}), "");
  EXPECT_EQ(toml_quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST(AgentHex, Decode) {
  std::string out;
  ASSERT_TRUE(decode_hex("00ff7A", out));
  EXPECT_EQ(out, std::string("\x00\xff\x7a", 3));
  EXPECT_FALSE(decode_hex("abc", out));
  EXPECT_FALSE(decode_hex("zz", out));
  ASSERT_TRUE(decode_hex("", out));
  EXPECT_TRUE(out.empty());
}

TEST(AgentPodman, RunMinimal) {
  agent_proto::Plan plan;
  EXPECT_EQ(podman_run_argv(plan, "docker.io/library/busybox:latest"),
            (Argv{"podman", "run", "--name", "fcvm-main", "--replace", "--network", "host",
                  "--sdnotify=conmon", "--pull=never", "docker.io/library/busybox:latest"}));
}

TEST(AgentPodman, RunFull) {
  agent_proto::Plan plan;
  plan.entrypoint = {"/bin/sh", "-c"};
  plan.command = {"echo \"$A\"; exit 3"};
  plan.env = {"A=1 2", "B="};
  plan.workdir = "/srv/app";
  EXPECT_EQ(podman_run_argv(plan, "app"),
            (Argv{"podman", "run", "--name", "fcvm-main", "--replace", "--network", "host",
                  "--sdnotify=conmon", "--pull=never", "--entrypoint", R"(["/bin/sh","-c"])", "-e",
                  "A=1 2", "-e", "B=", "-w", "/srv/app", "app", "echo \"$A\"; exit 3"}));
}

TEST(AgentPodman, RunOptions) {
  agent_proto::Plan plan;
  plan.hostname = "web";
  plan.user = "app";
  plan.read_only = true;
  plan.stdin_open = true;
  plan.tty = true;
  plan.init = true;
  EXPECT_EQ(podman_run_argv(plan, "app"),
            (Argv{"podman", "run", "--name", "fcvm-main", "--replace", "--network", "host",
                  "--sdnotify=conmon", "--pull=never", "--user", "app", "--read-only", "-i", "-t",
                  "--init", "app"}));
}

TEST(AgentPodman, RunUlimits) {
  agent_proto::Plan plan;
  plan.ulimits = {{"nofile", 1024, 4096}, {"core", -1, -1}};
  EXPECT_EQ(podman_run_argv(plan, "app"),
            (Argv{"podman", "run", "--name", "fcvm-main", "--replace", "--network", "host",
                  "--sdnotify=conmon", "--pull=never", "--ulimit", "nofile=1024:4096", "--ulimit",
                  "core=-1:-1", "app"}));
}

TEST(AgentOci, RlimitsReplacePodmansDefaults) {
  EXPECT_EQ(rlimits({}).dump(), R"([{"hard":1048576,"soft":1048576,"type":"RLIMIT_NOFILE"},)"
                                R"({"hard":32768,"soft":32768,"type":"RLIMIT_NPROC"}])");
  EXPECT_EQ(rlimits({{"nofile", 1024, 4096}, {"core", -1, -1}}).dump(),
            R"([{"hard":32768,"soft":32768,"type":"RLIMIT_NPROC"},)"
            R"({"hard":4096,"soft":1024,"type":"RLIMIT_NOFILE"},)"
            R"({"hard":18446744073709551615,"soft":18446744073709551615,"type":"RLIMIT_CORE"}])");
}

// A stored image: the container runs from the overlay over its disk with the image's config
// applied as podman applies it to a stored image.
agent_proto::Plan stored_image_plan() {
  agent_proto::Plan plan;
  plan.hostname = "web";
  plan.image.rootfs_serial = "fcvm-image";
  plan.image.config = {{"/docker-entrypoint.sh"},
                       {"nginx", "-g", "daemon off;"},
                       {"PATH=/usr/bin", "A=image"},
                       "/srv",
                       "101:101",
                       "SIGQUIT"};
  return plan;
}

TEST(AgentOci, ArgsAndCwdFollowPodman) {
  auto plan = stored_image_plan();
  EXPECT_EQ(container_args(plan), (Argv{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}));
  EXPECT_EQ(container_cwd(plan), "/srv");
  // A command replaces CMD only; an entrypoint replaces ENTRYPOINT and drops CMD; a workdir wins.
  plan.command = {"echo", "hi"};
  EXPECT_EQ(container_args(plan), (Argv{"/docker-entrypoint.sh", "echo", "hi"}));
  plan.command.clear();
  plan.entrypoint = {"/bin/sh"};
  plan.workdir = "/w";
  EXPECT_EQ(container_args(plan), (Argv{"/bin/sh"}));
  EXPECT_EQ(container_cwd(plan), "/w");
  plan.command = {"-c", "true"};
  EXPECT_EQ(container_args(plan), (Argv{"/bin/sh", "-c", "true"}));
  plan.image.config.workdir.clear();
  plan.workdir.clear();
  EXPECT_EQ(container_cwd(plan), "/");
}

TEST(AgentOci, EnvironmentLayersInPodmansOrder) {
  auto plan = stored_image_plan();
  plan.env = {"A=run", "B=2", "HOSTNAME=mine"};
  ContainerUser user;
  user.home = "/home/web";
  EXPECT_EQ(container_env(plan, user), (Argv{"TERM=xterm", "PATH=/usr/bin", "A=run",
                                             "HOME=/home/web", "HOSTNAME=mine", "B=2"}));
  // No PATH in the image: podman's default. A HOME in the image wins over the user's.
  plan.image.config.env = {"HOME=/data"};
  plan.env.clear();
  EXPECT_EQ(container_env(plan, user),
            (Argv{"TERM=xterm", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                  "HOME=/data", "HOSTNAME=web"}));
  EXPECT_EQ(merge_env({"A=1", "B=2"}, {"B=3", "C", "A="}), (Argv{"A=", "B=3", "C"}));
}

TEST(AgentOci, UsersResolveAgainstTheContainersFiles) {
  const std::string passwd =
      "root:x:0:0:root:/root:/bin/sh\n# comment\nshort:x\nweb:x:101:102:web:/srv/web:/bin/false\n"
      "bad:x:notanumber:1::/:/bin/sh\n";
  const std::string group = "root:x:0:\nweb:x:102:\nadm:x:4:web,other\nwww:x:33:web\n";
  auto root = resolve_user("", passwd, group);
  ASSERT_TRUE(root);
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->home, "/root");
  auto web = resolve_user("web", passwd, group);
  ASSERT_TRUE(web);
  EXPECT_EQ(web->uid, 101u);
  EXPECT_EQ(web->gid, 102u);
  EXPECT_EQ(web->home, "/srv/web");
  EXPECT_EQ(web->additional_gids, (std::vector<uint32_t>{4, 33}));
  // A uid with an entry is that entry; an explicit group is the only group.
  auto by_uid = resolve_user("101:adm", passwd, group);
  ASSERT_TRUE(by_uid);
  EXPECT_EQ(by_uid->uid, 101u);
  EXPECT_EQ(by_uid->gid, 4u);
  EXPECT_TRUE(by_uid->additional_gids.empty());
  // A uid without an entry: gid 0, home "/" (as podman); a numeric group needs no entry.
  auto bare = resolve_user("1234:5678", "", "");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->uid, 1234u);
  EXPECT_EQ(bare->gid, 5678u);
  EXPECT_EQ(bare->home, "/");
  auto no_group = resolve_user("1234", passwd, group);
  ASSERT_TRUE(no_group);
  EXPECT_EQ(no_group->gid, 0u);
  auto unknown = resolve_user("nobody", passwd, group);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("'nobody' is not in the container's /etc/passwd"),
            std::string::npos);
  EXPECT_FALSE(resolve_user("web:staff", passwd, group));
  EXPECT_FALSE(resolve_user("web:", passwd, group));
  EXPECT_FALSE(resolve_user("bad", passwd, group));
  EXPECT_FALSE(resolve_user("-1", passwd, group));
}

TEST(AgentOci, SpecAndExecProcess) {
  auto plan = stored_image_plan();
  plan.volumes = {{"/data", "block", "v0", false}, {"/ro", "nfs", "", true}};
  ContainerUser user{101, 102, {4}, "/srv/web"};
  auto env = container_env(plan, user);
  auto spec = container_spec(plan, "/run/fcvm/rootfs", user, env,
                             {"/b/hosts", "/b/resolv.conf", "/b/hostname"});
  EXPECT_EQ(spec["root"]["path"], "/run/fcvm/rootfs");
  EXPECT_EQ(spec["hostname"], "web");
  EXPECT_EQ(spec["process"]["args"], container_args(plan));
  EXPECT_EQ(spec["process"]["cwd"], "/srv");
  EXPECT_EQ(spec["process"]["user"]["uid"], 101);
  EXPECT_EQ(spec["process"]["user"]["additionalGids"], std::vector<int>{4});
  EXPECT_EQ(spec["process"]["env"], env);
  auto caps = spec["process"]["capabilities"]["bounding"].get<Argv>();
  EXPECT_NE(std::find(caps.begin(), caps.end(), "CAP_NET_BIND_SERVICE"), caps.end());
  EXPECT_EQ(std::find(caps.begin(), caps.end(), "CAP_SYS_ADMIN"), caps.end());
  // The host network: no network namespace.
  for (const auto& ns : spec["linux"]["namespaces"]) EXPECT_NE(ns["type"], "network");
  EXPECT_FALSE(spec.contains("seccomp"));
  std::map<std::string, nlohmann::json> mounts;
  for (const auto& m : spec["mounts"]) mounts[m["destination"].get<std::string>()] = m;
  for (const char* d : {"/proc", "/dev", "/dev/pts", "/dev/shm", "/sys", "/sys/fs/cgroup"}) {
    EXPECT_EQ(mounts.count(d), 1u) << d;
  }
  EXPECT_EQ(mounts["/etc/resolv.conf"]["source"], "/b/resolv.conf");
  EXPECT_EQ(mounts["/data"]["source"], "/run/fcvm/volumes/0");
  EXPECT_EQ(mounts["/data"]["options"], (Argv{"rbind", "rprivate"}));
  EXPECT_EQ(mounts["/ro"]["source"], "/run/fcvm/volumes/1");
  EXPECT_EQ(mounts["/ro"]["options"], (Argv{"rbind", "rprivate", "ro"}));

  agent_proto::Exec exec;
  exec.argv = {"sh", "-c", "id"};
  exec.env = {"A=exec"};
  auto process = exec_process(exec, ContainerUser{}, env, "/srv");
  EXPECT_EQ(process["args"], exec.argv);
  EXPECT_EQ(process["cwd"], "/srv");
  EXPECT_EQ(process["user"]["uid"], 0);
  auto exec_env = process["env"].get<Argv>();
  EXPECT_NE(std::find(exec_env.begin(), exec_env.end(), "A=exec"), exec_env.end());
  EXPECT_EQ(std::find(exec_env.begin(), exec_env.end(), "A=image"), exec_env.end());
  EXPECT_EQ(process["terminal"], false);
  exec.workdir = "/tmp";
  exec.tty = true;
  exec.rows = 33;
  exec.cols = 111;
  process = exec_process(exec, ContainerUser{}, env, "/srv");
  EXPECT_EQ(process["cwd"], "/tmp");
  EXPECT_EQ(process["terminal"], true);
  EXPECT_EQ(process["consoleSize"]["height"], 33);
  EXPECT_EQ(process["consoleSize"]["width"], 111);
  EXPECT_EQ(crun_exec_failure_code(
                "executable file `/no/such` not found in $PATH: No such file or directory"),
            127);
  EXPECT_EQ(crun_exec_failure_code("open executable: Permission denied"), 126);
  EXPECT_EQ(crun_exec_failure_code("container fcvm-main is not running"), 125);
  EXPECT_EQ(crun_exec_argv("/r", "/b/p.json", "/b/p.pid"),
            (Argv{"crun", "--root", "/r", "exec", "--process", "/b/p.json", "--pid-file",
                  "/b/p.pid", "fcvm-main"}));
}

TEST(AgentOci, InitReadOnlyAndUser) {
  auto plan = stored_image_plan();
  EXPECT_EQ(container_user_spec(plan), "101:101");
  plan.user = "app";
  EXPECT_EQ(container_user_spec(plan), "app");
  plan.init = true;
  plan.read_only = true;
  auto spec = container_spec(plan, "/r", ContainerUser{}, {}, {"/h", "/rc", "/hn"});
  EXPECT_EQ(spec["root"]["readonly"], true);
  auto args = spec["process"]["args"].get<Argv>();
  ASSERT_GE(args.size(), 3u);
  EXPECT_EQ(Argv(args.begin(), args.begin() + 3),
            (Argv{"/run/fcvm-init", "--", "/docker-entrypoint.sh"}));
  // The init's bind comes after /run's tmpfs (which would hide it); /tmp and /var/tmp writable.
  int run_at = -1, init_at = -1, i = 0;
  std::set<std::string> tmpfs;
  for (const auto& m : spec["mounts"]) {
    auto dest = m["destination"].get<std::string>();
    if (dest == "/run") run_at = i;
    if (dest == "/run/fcvm-init") {
      init_at = i;
      EXPECT_EQ(m["source"], "/usr/bin/catatonit");
    }
    if (m["type"] == "tmpfs") tmpfs.insert(dest);
    ++i;
  }
  EXPECT_GE(run_at, 0);
  EXPECT_GT(init_at, run_at);
  EXPECT_TRUE(tmpfs.count("/tmp") && tmpfs.count("/var/tmp"));
}

TEST(AgentPodman, Exec) {
  agent_proto::Exec e;
  e.stream = 2;
  e.argv = {"ls", "-l"};
  EXPECT_EQ(podman_exec_argv(e), (Argv{"podman", "exec", "-i", "fcvm-main", "ls", "-l"}));
  e.tty = true;
  e.env = {"X=1"};
  e.workdir = "/w";
  e.user = "nobody";
  EXPECT_EQ(podman_exec_argv(e), (Argv{"podman", "exec", "-i", "-t", "-e", "X=1", "-w", "/w", "-u",
                                       "nobody", "fcvm-main", "ls", "-l"}));
}

TEST(AgentPodman, InVmArgv) {
  agent_proto::Exec e;
  e.argv = {"id"};
  EXPECT_EQ(*in_vm_argv(e), Argv{"id"});
  e.user = "1000";
  EXPECT_EQ(*in_vm_argv(e),
            (Argv{"setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--", "id"}));
  e.user = "1000:50";
  EXPECT_EQ(*in_vm_argv(e),
            (Argv{"setpriv", "--reuid=1000", "--regid=50", "--clear-groups", "--", "id"}));
  for (const char* bad : {"alice", "1000:", "1:2:3", "-1"}) {
    e.user = bad;
    EXPECT_FALSE(in_vm_argv(e)) << bad;
  }
}

TEST(AgentPodman, OtherCommands) {
  EXPECT_EQ(podman_load_argv("/dev/vdb"), (Argv{"podman", "load", "-i", "/dev/vdb"}));
  EXPECT_EQ(podman_stop_argv(10), (Argv{"podman", "stop", "-t", "10", "fcvm-main"}));
  EXPECT_EQ(podman_stop_argv(-5), (Argv{"podman", "stop", "-t", "0", "fcvm-main"}));
  EXPECT_EQ(podman_running_argv(), (Argv{"podman", "container", "inspect", "--format",
                                         "{{.State.Running}}", "fcvm-main"}));
}

TEST(AgentPodman, ParseLoadedImage) {
  EXPECT_EQ(parse_loaded_image("Getting image source signatures\nCopying blob 123 done\n"
                               "Writing manifest to image destination\n"
                               "Loaded image: localhost/web:1\n"),
            "localhost/web:1");
  EXPECT_EQ(parse_loaded_image("Loaded image(s): docker.io/library/a:1,docker.io/library/b:2\n"),
            "docker.io/library/a:1");
  EXPECT_EQ(parse_loaded_image("Loaded image: localhost/a:1\nLoaded image: localhost/b:2\n"),
            "localhost/a:1");
  std::string id(64, 'c');
  EXPECT_EQ(parse_loaded_image("Loaded image: sha256:" + id + "\n"), id);
  EXPECT_EQ(parse_loaded_image("Loaded image: " + id), id);
  EXPECT_FALSE(parse_loaded_image(""));
  EXPECT_FALSE(parse_loaded_image("Error: payload does not match any of the supported formats"));
  EXPECT_FALSE(parse_loaded_image("Loaded image: \n"));
}

TEST(AgentPodman, NotifyReady) {
  EXPECT_TRUE(notify_says_ready("MAINPID=1234\nREADY=1"));
  EXPECT_TRUE(notify_says_ready("READY=1\n"));
  EXPECT_FALSE(notify_says_ready("MAINPID=1234"));
  EXPECT_FALSE(notify_says_ready("READY=10"));
  EXPECT_FALSE(notify_says_ready("NOTREADY=1"));
}

TEST(AgentPodman, TailLines) {
  EXPECT_EQ(tail_lines("  short\n", 100), "short");
  EXPECT_EQ(tail_lines("line one\nline two\nline three", 14), "...line three");
  EXPECT_EQ(tail_lines(std::string(50, 'x'), 10), "..." + std::string(10, 'x'));
}

TEST(AgentExec, SignalNumber) {
  EXPECT_EQ(signal_number("TERM"), 15);
  EXPECT_EQ(signal_number("SIGINT"), 2);
  EXPECT_EQ(signal_number("kill"), 9);
  EXPECT_EQ(signal_number("HUP"), 1);
  EXPECT_EQ(signal_number("WINCH"), 28);
  EXPECT_EQ(signal_number("15"), 15);
  EXPECT_EQ(signal_number("64"), 64);
  for (const char* bad : {"", "0", "65", "-9", "SIG", "TERMX", " TERM"}) {
    EXPECT_FALSE(signal_number(bad)) << bad;
  }
}

TEST(AgentExec, InVmEnvironment) {
  agent_proto::Exec e;
  e.argv = {"sh"};
  e.env = {"A=1"};
  EXPECT_EQ(in_vm_env(e), Argv{"A=1"});
  e.tty = true;
  EXPECT_EQ(in_vm_env(e), (Argv{"TERM=xterm", "A=1"}));
  e.env = {"TERM=screen"};
  EXPECT_EQ(in_vm_env(e), Argv{"TERM=screen"});
}

TEST(AgentExec, ProcRecords) {
  using namespace std::string_literals;
  auto env_text = "PATH=/bin\0LC_FCVM_EXEC=1.2\0HOME=/root\0"s;
  EXPECT_TRUE(environ_has(env_text, "LC_FCVM_EXEC=1.2"));
  EXPECT_FALSE(environ_has(env_text, "LC_FCVM_EXEC=1.20"));
  EXPECT_FALSE(environ_has(env_text, "LC_FCVM_EXEC=1"));
  EXPECT_FALSE(environ_has("", "A=1"));

  auto cmdline = "/usr/bin/conmon\0-c\0abc\0-p\0/run/x/exec_pid\0-n\0fcvm-main\0--exec\0"s;
  EXPECT_EQ(cmdline_option(cmdline, "-p"), "/run/x/exec_pid");
  EXPECT_EQ(cmdline_option(cmdline, "-n"), "fcvm-main");
  EXPECT_EQ(cmdline_option("conmon\0--pid-file=/a\0"s, "--pid-file"), "/a");
  EXPECT_FALSE(cmdline_option(cmdline, "-P"));
  EXPECT_FALSE(cmdline_option("conmon\0-p\0"s, "-p"));  // no value

  EXPECT_EQ(stat_parent("1234 (sleep) S 77 1234 1234 0 -1 4194560 ..."), 77);
  EXPECT_EQ(stat_parent("99 (a) b (c) R 5 99 99"), 5);  // comm with spaces and parentheses
  EXPECT_FALSE(stat_parent("garbage"));
  EXPECT_FALSE(stat_parent("1 (x) S"));
}

TEST(AgentExec, ProcessTree) {
  // (pid, parent): 10 -> 11 -> 13, 10 -> 12; 20 elsewhere; a stale entry makes 10 a child of 13.
  std::vector<std::pair<pid_t, pid_t>> parents = {{1, 0},   {10, 1}, {11, 10}, {12, 10},
                                                  {13, 11}, {20, 1}, {10, 13}};
  EXPECT_EQ(process_tree(10, parents), (std::vector<pid_t>{10, 11, 12, 13}));
  EXPECT_EQ(process_tree(12, parents), (std::vector<pid_t>{12}));
  EXPECT_EQ(process_tree(99, parents), (std::vector<pid_t>{99}));
}

TEST(AgentMmds, TheCommandLineAnnouncesIt) {
  EXPECT_TRUE(mmds_from_cmdline("console=ttyS0 fcvm.mmds=1 quiet"));
  EXPECT_FALSE(mmds_from_cmdline("console=ttyS0 quiet"));
  EXPECT_FALSE(mmds_from_cmdline("fcvm.mmds=1 fcvm.mmds=0"));  // the last one wins
  EXPECT_FALSE(mmds_from_cmdline("fcvm.mmdsx=1"));
}

TEST(AgentMmds, RequestsAreMmdsVersion2) {
  auto token = mmds_token_request();
  EXPECT_EQ(token.rfind("PUT /latest/api/token HTTP/1.1\r\n", 0), 0u) << token;
  EXPECT_NE(token.find("\r\nX-metadata-token-ttl-seconds: 60\r\n"), std::string::npos);
  EXPECT_EQ(token.substr(token.size() - 4), "\r\n\r\n");
  auto get = mmds_get_request("/fcvm/plan", "T0K");
  EXPECT_EQ(get.rfind("GET /fcvm/plan HTTP/1.1\r\n", 0), 0u) << get;
  EXPECT_NE(get.find("\r\nX-metadata-token: T0K\r\n"), std::string::npos);
  EXPECT_NE(get.find("\r\nAccept: application/json\r\n"), std::string::npos);
}

TEST(AgentMmds, AnAnswerIsCompleteWithItsBody) {
  EXPECT_FALSE(mmds_response_complete("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"));
  EXPECT_FALSE(mmds_response_complete("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ntok"));
  EXPECT_TRUE(mmds_response_complete("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ntoken"));
  EXPECT_TRUE(mmds_response_complete("HTTP/1.1 200 OK\r\nX: y\r\ncontent-length: 0\r\n\r\n"));
  EXPECT_FALSE(mmds_response_complete("HTTP/1.1 200 OK\r\nX: y\r\n\r\nbody"));  // to EOF
  EXPECT_TRUE(mmds_response_complete("HTTP/1.1 200 OK\r\nContent-Length: z\r\n\r\n"));
}

TEST(AgentMmds, AnswersAreCheckedWhole) {
  auto ok = mmds_response_body("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ntokenEXTRA");
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(*ok, "token");
  auto no_length = mmds_response_body("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n{\"a\":1}");
  ASSERT_TRUE(no_length);
  EXPECT_EQ(*no_length, "{\"a\":1}");
  auto lower = mmds_response_body("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
  ASSERT_TRUE(lower);
  EXPECT_EQ(*lower, "{}");
  EXPECT_EQ(
      mmds_response_body("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").error().code(),
      ErrorCode::kNotFound);
  auto denied = mmds_response_body("HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\n\r\nno tok");
  ASSERT_FALSE(denied);
  EXPECT_NE(denied.error().message().find("401"), std::string::npos);
  EXPECT_EQ(mmds_response_body("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").error().code(),
            ErrorCode::kProtocol);
  EXPECT_EQ(mmds_response_body("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").error().code(),
            ErrorCode::kProtocol);
  EXPECT_EQ(mmds_response_body("HTTP/1.1 200 OK\r\n").error().code(), ErrorCode::kProtocol);
  EXPECT_EQ(mmds_response_body("SSH-2.0\r\n\r\n").error().code(), ErrorCode::kProtocol);
  EXPECT_EQ(mmds_response_body("HTTP/1.1 2x0 OK\r\n\r\n").error().code(), ErrorCode::kProtocol);
}
