#!/usr/bin/python3
"""A CRI suite in the spirit of Kubernetes' critest, against containerd's real CRI plugin.

    suite.py --socket SOCK --handler kata|runc --work DIR [--cases a,b] [--skip-network WHY]

Speaks CRI v1 over gRPC on containerd's socket as kubelet does, with a client of our own: the
messages come from Tests/CRI/cri.proto (compiled with protoc at start into a scratch directory),
the calls go through grpcio's generic unary calls. Images `localhost/pause:latest` and
`localhost/busybox:latest` must be in containerd's k8s.io namespace, and CNI configured (the
Swift side, CRITests, does both). Prints PASS/FAIL/SKIP per case; exits 1 when a case failed.
Run with Debian's /usr/bin/python3 (grpcio and protobuf from python3-grpcio, python3-protobuf).
"""
import argparse
import hashlib
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import streaming  # noqa: E402 (Tests/CRI/streaming.py, also when suite.py is loaded as a module)

HERE = os.path.dirname(os.path.abspath(__file__))
BUSYBOX = "localhost/busybox:latest"


def load_messages():
    out = tempfile.mkdtemp(prefix="ks-cri-pb-")
    subprocess.run(["protoc", f"--proto_path={HERE}", f"--python_out={out}", "cri.proto"], check=True)
    sys.path.insert(0, out)
    return importlib.import_module("cri_pb2")


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


class Client:
    """One gRPC channel; a method per CRI call the suite makes."""

    def __init__(self, socket, pb):
        self.pb = pb
        self.channel = grpc.insecure_channel("unix://" + socket)

    def call(self, service, method, request, response, timeout=300):
        stub = self.channel.unary_unary(
            f"/runtime.v1.{service}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=getattr(self.pb, response).FromString)
        return stub(request, timeout=timeout)

    def runtime(self, method, request, response, timeout=300):
        return self.call("RuntimeService", method, request, response, timeout)


class Suite:
    def __init__(self, args, pb):
        self.args = args
        self.pb = pb
        self.cri = Client(args.socket, pb)
        self.pods = []
        self.counter = 0
        os.makedirs(args.work, exist_ok=True)

    # ---- helpers

    def pod_config(self, name, hostname=None, dns=None):
        pb = self.pb
        self.counter += 1
        logs = os.path.join(self.args.work, f"logs-{name}-{self.counter}")
        os.makedirs(logs, exist_ok=True)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}-{self.counter}", namespace="ks-suite", attempt=0),
            hostname=hostname or name, log_directory=logs, dns_config=dns or pb.DNSConfig(),
            labels={"suite": "kata-swift"},
            linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=0, pid=1, ipc=0))))

    def run_pod(self, config):
        pb = self.pb
        pod = self.cri.runtime("RunPodSandbox", pb.RunPodSandboxRequest(config=config, runtime_handler=self.args.handler),
                               "RunPodSandboxResponse").pod_sandbox_id
        self.pods.append(pod)
        return pod

    def container(self, pod, config, name, command, mounts=(), memory=0, attempt=0, start=True, log=True):
        pb = self.pb
        cc = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=attempt), image=pb.ImageSpec(image=BUSYBOX),
            command=command, log_path=f"{name}-{attempt}.log" if log else "",
            mounts=[pb.Mount(container_path=c, host_path=h, readonly=ro) for (c, h, ro) in mounts],
            linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(memory_limit_in_bytes=memory)))
        cid = self.cri.runtime("CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=pod, config=cc, sandbox_config=config),
                               "CreateContainerResponse").container_id
        if start:
            self.cri.runtime("StartContainer", pb.StartContainerRequest(container_id=cid), "StartContainerResponse")
        return cid

    def url(self, method, request):
        return self.cri.runtime(method, request, method + "Response").url

    def exec(self, cid, script, timeout=60, argv=None):
        pb = self.pb
        r = self.cri.runtime("ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=argv or ["sh", "-c", script], timeout=timeout),
                             "ExecSyncResponse", timeout=timeout + 60)
        return r.exit_code, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def status(self, cid):
        return self.cri.runtime("ContainerStatus", self.pb.ContainerStatusRequest(container_id=cid), "ContainerStatusResponse").status

    def wait_state(self, cid, state, seconds=120):
        deadline = time.time() + seconds
        while True:
            s = self.status(cid)
            if s.state == state:
                return s
            if time.time() > deadline:
                raise Failure(f"container {cid[:12]} is in state {s.state}, not {state} after {seconds} s")
            time.sleep(0.2)

    def pod_ip(self, pod):
        return self.cri.runtime("PodSandboxStatus", self.pb.PodSandboxStatusRequest(pod_sandbox_id=pod),
                                "PodSandboxStatusResponse").status.network.ip

    def fetch_until_answered(self, url, expected, seconds=60):
        """GETs `url` from the host until it answers (the server may still be starting); the body must be `expected`."""
        deadline = time.time() + seconds
        last = None
        while time.time() < deadline:
            try:
                body = urllib.request.urlopen(url, timeout=5).read().decode()
                check(body == expected, f"body {body!r}")
                return
            except OSError as e:
                last = e
                time.sleep(0.5)
        raise Failure(f"{url} did not answer: {last}")

    def remove_pods(self):
        pb = self.pb
        for pod in self.pods:
            try:
                self.cri.runtime("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod), "StopPodSandboxResponse")
                self.cri.runtime("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod), "RemovePodSandboxResponse")
            except grpc.RpcError as e:
                print(f"  cleanup of pod {pod[:12]}: {e.code()} {e.details()}")
        self.pods = []

    # ---- cases

    def case_pod_lifecycle(self):
        """RunPodSandbox, PodSandboxStatus, ListPodSandbox, StopPodSandbox (twice), RemovePodSandbox (twice)."""
        pb = self.pb
        config = self.pod_config("life")
        t0 = time.time()
        pod = self.run_pod(config)
        print(f"  RunPodSandbox: {time.time() - t0:.2f} s")
        st = self.cri.runtime("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=pod), "PodSandboxStatusResponse").status
        check(st.state == pb.SANDBOX_READY, f"state {st.state}")
        check(st.metadata.name == "life" and st.runtime_handler == self.args.handler, f"status {st}")
        check(st.network.ip != "", "the pod has no IP from CNI")
        items = self.cri.runtime("ListPodSandbox", pb.ListPodSandboxRequest(), "ListPodSandboxResponse").items
        check(any(i.id == pod and i.state == pb.SANDBOX_READY for i in items), "ListPodSandbox does not list the pod as ready")
        for _ in range(2):
            self.cri.runtime("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod), "StopPodSandboxResponse")
        st = self.cri.runtime("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=pod), "PodSandboxStatusResponse").status
        check(st.state == pb.SANDBOX_NOTREADY, f"state after stop {st.state}")
        for _ in range(2):
            self.cri.runtime("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod), "RemovePodSandboxResponse")
        self.pods.remove(pod)
        items = self.cri.runtime("ListPodSandbox", pb.ListPodSandboxRequest(), "ListPodSandboxResponse").items
        check(all(i.id != pod for i in items), "the pod is still listed after RemovePodSandbox")

    def case_containers_in_one_pod(self):
        """Two containers in one pod: both run, under one kernel (the same boot id), listed; stop, remove,
        and a restart (attempt 1) of one of them."""
        pb = self.pb
        config = self.pod_config("two")
        pod = self.run_pod(config)
        a = self.container(pod, config, "a", ["sleep", "1000"])
        b = self.container(pod, config, "b", ["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 1; done"])
        ids = {c.id for c in self.cri.runtime("ListContainers", pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=pod)),
                                              "ListContainersResponse").containers}
        check(ids == {a, b}, f"ListContainers: {ids}")
        boot = [self.exec(c, "cat /proc/sys/kernel/random/boot_id")[1].strip() for c in (a, b)]
        check(boot[0] != "" and boot[0] == boot[1], f"boot ids differ: {boot}")
        self.cri.runtime("StopContainer", pb.StopContainerRequest(container_id=b, timeout=30), "StopContainerResponse")
        s = self.wait_state(b, pb.CONTAINER_EXITED)
        check(s.exit_code == 42, f"exit code {s.exit_code} (the TERM trap exits 42)")
        check(self.status(a).state == pb.CONTAINER_RUNNING, "container a stopped with b")
        self.cri.runtime("RemoveContainer", pb.RemoveContainerRequest(container_id=b), "RemoveContainerResponse")
        again = self.container(pod, config, "b", ["sh", "-c", "echo restarted; sleep 1000"], attempt=1)
        self.wait_state(again, pb.CONTAINER_RUNNING)
        code, out, _ = self.exec(again, "cat /proc/sys/kernel/random/boot_id")
        check(code == 0 and out.strip() == boot[0], "the restarted container runs under another kernel")
        self.cri.runtime("StopContainer", pb.StopContainerRequest(container_id=a, timeout=0), "StopContainerResponse")
        s = self.wait_state(a, pb.CONTAINER_EXITED)
        check(s.exit_code == 137, f"a killed at once exits 137, not {s.exit_code}")

    def case_exec_sync(self):
        """ExecSync: stdout, stderr, the exit code, and a timeout that stops a command running too long."""
        config = self.pod_config("exec")
        pod = self.run_pod(config)
        c = self.container(pod, config, "x", ["sleep", "1000"])
        code, out, err = self.exec(c, "echo to-out; echo to-err >&2; exit 7")
        check((code, out, err) == (7, "to-out\n", "to-err\n"), f"got {(code, out, err)}")
        t0 = time.time()
        try:
            # The command itself, not a shell around it: containerd kills the exec process at the
            # timeout and then waits for its output pipes, which a shell's child would keep open.
            code, out, err = self.exec(c, None, timeout=2, argv=["sleep", "30"])
            raise Failure(f"a 30 s command with a 2 s timeout returned {(code, out, err)}")
        except grpc.RpcError as e:
            check("timeout" in (e.details() or "").lower() or e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"{e.code()} {e.details()}")
        check(time.time() - t0 < 25, f"the timeout took {time.time() - t0:.1f} s")

    def case_logs(self):
        """Container output lands at <log_directory>/<log_path> in CRI's log format."""
        pb = self.pb
        config = self.pod_config("logs")
        pod = self.run_pod(config)
        c = self.container(pod, config, "log", ["sh", "-c", "echo out-line; echo err-line >&2; sleep 1000"])
        path = os.path.join(config.log_directory, "log-0.log")
        deadline = time.time() + 60
        text = ""
        while time.time() < deadline:
            text = open(path).read() if os.path.exists(path) else ""
            if "out-line" in text and "err-line" in text:
                break
            time.sleep(0.2)
        check(re.search(r"^\S+ stdout F out-line$", text, re.M), f"no stdout line in CRI format in {path}: {text!r}")
        check(re.search(r"^\S+ stderr F err-line$", text, re.M), f"no stderr line in CRI format in {path}: {text!r}")
        check(self.status(c).log_path == path, f"ContainerStatus.log_path {self.status(c).log_path}")

    def case_stats(self):
        """ContainerStats reports CPU and memory the container used."""
        pb = self.pb
        config = self.pod_config("stats")
        pod = self.run_pod(config)
        c = self.container(pod, config, "busy", ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000"])
        time.sleep(3)
        s = self.cri.runtime("ContainerStats", pb.ContainerStatsRequest(container_id=c), "ContainerStatsResponse").stats
        check(s.cpu.usage_core_nano_seconds.value > 0, f"cpu {s.cpu}")
        check(s.memory.working_set_bytes.value > 0, f"memory {s.memory}")

    def case_hostname_and_dns(self):
        """The pod's hostname and DNS configuration, as CRI wrote them, in every container."""
        pb = self.pb
        config = self.pod_config("dns", hostname="pod-host-1",
                                 dns=pb.DNSConfig(servers=["10.96.0.10"], searches=["ns.svc.cluster.local"], options=["ndots:5"]))
        pod = self.run_pod(config)
        c = self.container(pod, config, "d", ["sleep", "1000"])
        code, out, err = self.exec(c, "hostname; cat /etc/hostname; cat /etc/resolv.conf")
        check(code == 0, err)
        lines = out.split("\n")
        check(lines[0] == "pod-host-1" and lines[1] == "pod-host-1", f"hostname: {out!r}")
        check("nameserver 10.96.0.10" in out and "search ns.svc.cluster.local" in out and "options ndots:5" in out,
              f"resolv.conf: {out!r}")

    def case_volumes(self):
        """A writable volume (host sees the container's writes) and a read-only one (writes refused)."""
        config = self.pod_config("vol")
        pod = self.run_pod(config)
        rw = os.path.join(self.args.work, f"vol-rw-{self.counter}")
        ro = os.path.join(self.args.work, f"vol-ro-{self.counter}")
        os.makedirs(rw, exist_ok=True)
        os.makedirs(ro, exist_ok=True)
        open(os.path.join(ro, "config.txt"), "w").write("from the host\n")
        c = self.container(pod, config, "v", ["sleep", "1000"], mounts=[("/data", rw, False), ("/config", ro, True)])
        code, out, err = self.exec(c, "cat /config/config.txt; echo written > /data/out.txt && echo ok; echo x > /config/x || echo refused")
        check(code == 0, err)
        check(out == "from the host\nok\nrefused\n", f"{out!r} {err!r}")
        check(open(os.path.join(rw, "out.txt")).read() == "written\n", "the host does not see the container's write")
        check(not os.path.exists(os.path.join(ro, "x")), "a write reached the read-only volume")

    def case_shared_ipc_and_shm(self):
        """The pod's containers share its ipc namespace and /dev/shm."""
        config = self.pod_config("ipc")
        pod = self.run_pod(config)
        a = self.container(pod, config, "a", ["sleep", "1000"])
        b = self.container(pod, config, "b", ["sleep", "1000"])
        check(self.exec(a, "echo shared > /dev/shm/token")[0] == 0, "write to /dev/shm failed")
        code, out, err = self.exec(b, "cat /dev/shm/token")
        check(code == 0 and out == "shared\n", f"b sees {out!r} {err!r}")
        ns = [self.exec(c, "readlink /proc/self/ns/ipc")[1] for c in (a, b)]
        check(ns[0] != "" and ns[0] == ns[1], f"ipc namespaces {ns}")

    def case_oom_killed(self):
        """A container over its memory limit is reported OOMKilled."""
        pb = self.pb
        config = self.pod_config("oom")
        pod = self.run_pod(config)
        c = self.container(pod, config, "hog", ["sh", "-c", "tail /dev/zero"], memory=32 << 20)
        s = self.wait_state(c, pb.CONTAINER_EXITED, seconds=180)
        deadline = time.time() + 10
        while s.reason != "OOMKilled" and time.time() < deadline:
            time.sleep(0.2)
            s = self.status(c)
        check(s.reason == "OOMKilled", f"reason {s.reason!r}, exit code {s.exit_code}")
        check(s.exit_code == 137, f"exit code {s.exit_code}")

    def case_pod_ip_answers_the_host(self):
        """network: an HTTP server in the pod answers the host at the pod's IP from CNI."""
        config = self.pod_config("web")
        pod = self.run_pod(config)
        self.container(pod, config, "httpd", ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && httpd -f -p 8080 -h /www"])
        ip = self.pod_ip(pod)
        check(ip != "", "no pod IP")
        self.fetch_until_answered(f"http://{ip}:8080/index.html", "hello-from-pod\n")
    case_pod_ip_answers_the_host.needs_network = True

    def case_ipv6_pod_answers_the_host(self):
        """network: a dual-stack pod gets an IPv6 address from CNI, and its server answers the host there."""
        config = self.pod_config("web6")
        pod = self.run_pod(config)
        self.container(pod, config, "httpd", ["sh", "-c", "mkdir -p /www && echo hello-over-ipv6 > /www/index.html && httpd -f -p 8080 -h /www"])
        network = self.cri.runtime("PodSandboxStatus", self.pb.PodSandboxStatusRequest(pod_sandbox_id=pod),
                                   "PodSandboxStatusResponse").status.network
        ips = [network.ip] + [p.ip for p in network.additional_ips]
        ip6 = next((ip for ip in ips if ":" in ip), None)
        check(ip6 is not None, f"no IPv6 address among {ips}")
        self.fetch_until_answered(f"http://[{ip6}]:8080/index.html", "hello-over-ipv6\n")
    case_ipv6_pod_answers_the_host.needs_network = True

    def case_pod_to_pod(self):
        """network: one pod fetches from another by its IP."""
        server_config = self.pod_config("srv")
        server = self.run_pod(server_config)
        self.container(server, server_config, "httpd", ["sh", "-c", "mkdir -p /www && echo pod-to-pod > /www/index.html && httpd -f -p 8080 -h /www"])
        ip = self.pod_ip(server)
        client_config = self.pod_config("cli")
        client = self.run_pod(client_config)
        c = self.container(client, client_config, "wget", ["sleep", "1000"])
        # nc, not wget: Debian's static busybox wget crashes (also on the host).
        fetch = f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 8080"
        code, out, err = self.exec(c, f"for i in $(seq 1 30); do {fetch} | grep -q pod-to-pod && exit 0; sleep 1; done; exit 1", timeout=120)
        check(code == 0, f"{code} {out!r} {err!r}")
    case_pod_to_pod.needs_network = True

    def case_exec_streaming(self):
        """Exec through containerd's streaming server (WebSocket): stdout, stderr, exit code."""
        pb = self.pb
        config = self.pod_config("stream")
        pod = self.run_pod(config)
        c = self.container(pod, config, "main", ["sleep", "1000"])
        url = self.url("Exec", pb.ExecRequest(container_id=c, cmd=["sh", "-c", "echo to-out; echo to-err >&2; exit 3"],
                                              stdout=True, stderr=True))
        out, err, status = streaming.run_exec(url)
        check(out == b"to-out\n" and err == b"to-err\n", f"stdout {out!r} stderr {err!r}")
        check(streaming.exit_code(status) == 3, f"status {status}")
        url = self.url("Exec", pb.ExecRequest(container_id=c, cmd=["true"], stdout=True, stderr=True))
        check(streaming.exit_code(streaming.run_exec(url)[2]) == 0, "true did not succeed")

    def case_exec_stdin_and_tty(self):
        """Exec with stdin on a terminal: input reaches the process, the terminal has the size the client set."""
        pb = self.pb
        config = self.pod_config("tty")
        pod = self.run_pod(config)
        c = self.container(pod, config, "main", ["sleep", "1000"])
        # The resize travels apart from stdin (containerd applies it asynchronously): wait for it.
        script = ("read line; echo got:$line; for i in $(seq 1 50); do size=$(stty size 2>/dev/null); "
                  "[ -n \"$size\" ] && [ \"$size\" != '0 0' ] && break; sleep 0.1; done; echo size:$size; tty")
        url = self.url("Exec", pb.ExecRequest(container_id=c, cmd=["sh", "-c", script],
                                              tty=True, stdin=True, stdout=True))
        out, _, status = streaming.run_exec(url, stdin=b"hello\r", resize=(91, 33))
        text = out.decode(errors="replace")
        check("got:hello" in text, f"output {text!r}")
        check("size:33 91" in text, f"terminal size not 33 rows 91 columns: {text!r}")
        check("/dev/pts/" in text, f"not a terminal: {text!r}")
        check(streaming.exit_code(status) == 0, f"status {status}")

    def case_attach(self):
        """Attach to a running container's stdin and stdout."""
        pb = self.pb
        config = self.pod_config("attach")
        pod = self.run_pod(config)
        cc = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="echo"), image=pb.ImageSpec(image=BUSYBOX), stdin=True, log_path="echo.log",
            command=["sh", "-c", "echo ready; while read line; do echo echo:$line; done"])
        c = self.cri.runtime("CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=pod, config=cc, sandbox_config=config),
                             "CreateContainerResponse").container_id
        self.cri.runtime("StartContainer", pb.StartContainerRequest(container_id=c), "StartContainerResponse")
        url = self.url("Attach", pb.AttachRequest(container_id=c, stdin=True, stdout=True, stderr=True))
        out, _, _ = streaming.run_exec(url, stdin=b"one\n", until=lambda o: b"echo:one" in o, timeout=30)
        check(b"echo:one" in out, f"attach output {out!r}")
        check(self.status(c).state == 1, "the container stopped after the attach session")

    def case_port_forward(self):
        """PortForward: a server on the pod's loopback answers through containerd's streaming server,
        a 4 MiB body arrives intact, and a port nothing listens on gives an error, not a hang."""
        pb = self.pb
        config = self.pod_config("pf")
        pod = self.run_pod(config)
        c = self.container(pod, config, "httpd", ["sh", "-c", "mkdir -p /www && echo forwarded > /www/index.html && "
                           "head -c 4194304 /dev/urandom > /www/big && httpd -f -p 127.0.0.1:8081 -h /www"])

        def fetch(path, port=8081):
            url = self.url("PortForward", pb.PortForwardRequest(pod_sandbox_id=pod, port=[port]))
            return streaming.forward(url, port, f"GET {path} HTTP/1.0\r\n\r\n".encode())

        deadline = time.time() + 60
        while True:
            data, error = fetch("/index.html")
            if b"forwarded" in data:
                break
            check(time.time() < deadline, f"no answer through the port forward: {data[:200]!r} {error!r}")
            time.sleep(0.5)
        data, error = fetch("/big")
        body = data.split(b"\r\n\r\n", 1)[-1]
        code, out, _ = self.exec(c, "sha256sum /www/big")
        check(code == 0 and len(body) == 4194304 and hashlib.sha256(body).hexdigest() == out.split()[0],
              f"the 4 MiB body arrived as {len(body)} bytes ({error!r})")
        data, error = fetch("/", port=8089)
        check(data == b"" and error != "", f"port 8089 (nothing listening): data {data[:100]!r}, error {error!r}")
        print(f"  port 8089 (nothing listening): {error.strip()[:160]}")

    # ---- driver

    def cases(self):
        names = [n for n in dir(self) if n.startswith("case_")]
        order = [n for n in Suite.__dict__ if n.startswith("case_")]
        return [getattr(self, n) for n in order if n in names]

    def run(self):
        wanted = set(self.args.cases.split(",")) if self.args.cases else None
        results = []
        for case in self.cases():
            name = case.__name__[len("case_"):]
            if wanted and name not in wanted:
                continue
            if getattr(case, "needs_network", False) and self.args.skip_network:
                print(f"SKIP {name}: {self.args.skip_network}")
                results.append((name, "SKIP", 0.0))
                continue
            t0 = time.time()
            outcome = "PASS"
            try:
                case()
            except Failure as e:
                outcome = "FAIL"
                print(f"  {name}: {e}")
            except grpc.RpcError as e:
                outcome = "FAIL"
                print(f"  {name}: gRPC {e.code()}: {e.details()}")
            except Exception:
                outcome = "FAIL"
                traceback.print_exc()
            finally:
                self.remove_pods()
            elapsed = time.time() - t0
            print(f"{outcome} {name} ({elapsed:.1f} s)", flush=True)
            results.append((name, outcome, elapsed))
        print("RESULTS " + json.dumps({n: o for (n, o, _) in results}))
        return 1 if any(o == "FAIL" for (_, o, _) in results) else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--cases", default="")
    parser.add_argument("--skip-network", default="", help="skip the cases that need pod networking, giving this reason")
    args = parser.parse_args()
    pb = load_messages()
    sys.exit(Suite(args, pb).run())


if __name__ == "__main__":
    main()
