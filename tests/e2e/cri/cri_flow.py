#!/usr/bin/python3
"""Kubernetes' CRI flow against containerd's CRI plugin, as kubelet drives it, without kubelet:
a pod sandbox with host networking on the runtime handler `fcvm` (annotations fcvm.io/mem and
fcvm.io/cpu size the VM), one container, ExecSync, ContainerStatus, stop and removal.

Usage: cri_flow.py SOCKET IMAGE LOG_DIR FCVM_BIN
Generates the Python messages from api.proto beside this file (Debian's python3-grpc-tools), then
prints one line per step; exits non-zero with the reason on the first failure."""
import json
import os
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sock, image, log_dir, fcvm = sys.argv[1:5]

from grpc_tools import protoc  # noqa: E402

out = tempfile.mkdtemp(prefix="fcvm-cri-")
if protoc.main(["protoc", f"-I{here}", f"--python_out={out}", f"--grpc_python_out={out}",
                os.path.join(here, "api.proto")]) != 0:
    sys.exit("protoc failed on api.proto")
sys.path.insert(0, out)
import grpc  # noqa: E402
import api_pb2 as pb  # noqa: E402
import api_pb2_grpc as pbg  # noqa: E402

rt = pbg.RuntimeServiceStub(grpc.insecure_channel(f"unix://{sock}"))
T = 300  # seconds: a VM boots under emulation


def check(cond, why):
    if not cond:
        sys.exit(f"FAIL: {why}")


def step(what):
    print(what, flush=True)


v = rt.Version(pb.VersionRequest(), timeout=T)
step(f"version {v.runtime_name} {v.runtime_version} {v.runtime_api_version}")

pod = pb.PodSandboxConfig(
    metadata=pb.PodSandboxMetadata(name="web", uid="uid-web", namespace="default"),
    hostname="web", log_directory=log_dir,
    annotations={"fcvm.io/mem": "512", "fcvm.io/cpu": "1"},
    linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(network=pb.NODE))))
pod_id = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod, runtime_handler="fcvm"),
                          timeout=T).pod_sandbox_id
step(f"pod {pod_id[:12]}")

ctr = pb.ContainerConfig(
    metadata=pb.ContainerMetadata(name="app"), image=pb.ImageSpec(image=image),
    command=["sh", "-c", 'trap "exit 3" TERM; echo from-cri; while :; do sleep 1; done'],
    envs=[pb.KeyValue(key="GREETING", value="hello")], log_path="app.log")
cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr,
                                                   sandbox_config=pod), timeout=T).container_id
rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=T)
st = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=T).status
check(st.state == pb.CONTAINER_RUNNING, f"container state {st.state} after start")
step(f"container {cid[:12]} running")

# The container's VM: one fcvm VM, sized by the pod's annotations.
vms = subprocess.run([fcvm, "ls", "-q", "--filter", f"label=containerd.id={cid}"],
                     capture_output=True, text=True, check=True).stdout.split()
check(len(vms) == 1, f"fcvm ls shows {len(vms)} VMs for the container")
info = json.loads(subprocess.run([fcvm, "inspect", vms[0]], capture_output=True, text=True,
                                 check=True).stdout)
info = info[0] if isinstance(info, list) else info
mem = info["resources"]["mem_mib"]
cpus = info["resources"]["vcpus"]
check(mem == 512, f"the VM has {mem} MiB, not the annotation's 512")
check(cpus == 1, f"the VM has {cpus} vCPUs, not the annotation's 1")
step(f"vm {vms[0]}: {mem} MiB, {cpus} vCPU")

r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $((6*7)) $GREETING; exit 4"],
                                   timeout=60), timeout=T)
check(r.stdout == b"42 hello\n", f"ExecSync stdout {r.stdout!r}")
check(r.exit_code == 4, f"ExecSync exit code {r.exit_code}")
step("execsync: 42 hello, exit 4")

rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=30), timeout=T)
st = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=T).status
check(st.state == pb.CONTAINER_EXITED, f"container state {st.state} after stop")
check(st.exit_code == 3, f"exit code {st.exit_code}, not 3")
log = open(os.path.join(log_dir, "app.log")).read()
check(" stdout F from-cri" in log, f"the CRI log lacks the output: {log!r}")
step("stopped: exit 3, log line present")

rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=T)
rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=T)
rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=T)
left = subprocess.run([fcvm, "ls", "-a", "-q"], capture_output=True, text=True,
                      check=True).stdout.split()
check(not left, f"VMs left after the pod's removal: {left}")
step("removed: no VM left")
