#!/usr/bin/env python3
"""Turns the vCPU instruction pointers a VM's monitor logged for a hung boot into kernel symbols.

    tests/soak/symbolize_hung_boot.py KALLSYMS LOG [LOG...]

LOG: a monitor.log (or tests/soak/stall_watch.py's output) with the monitor's lines
"hung boot: vCPU N: RIP=... CPL=... HLT=..." and "hung boot: IDT vector 0 handler
(asm_exc_divide_error): ADDR". KALLSYMS: /proc/kallsyms of any guest running the same kernel,
read as root (`fcvm exec --vm VM -- cat /proc/kallsyms > kallsyms.txt`). The guest kernel's text
is placed at random on each boot (KASLR); the IDT handler's address in the hung boot against its
address in KALLSYMS gives that boot's offset.
"""
import bisect
import re
import sys

RIP = re.compile(r"hung boot: vCPU (\S+): RIP=([0-9a-f]+) CPL=(\d) HLT=(\d)")
IDT = re.compile(r"hung boot: IDT vector 0 handler \(asm_exc_divide_error\): ([0-9a-f]+)")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    symbols = []
    for line in open(sys.argv[1]):
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("t", "T"):
            symbols.append((int(parts[0], 16), parts[2]))
    symbols.sort()
    by_name = {name: addr for addr, name in symbols}
    if "asm_exc_divide_error" not in by_name or symbols[0][0] == 0:
        sys.exit(f"{sys.argv[1]}: no addresses (read /proc/kallsyms as root) or no asm_exc_divide_error")
    addrs = [a for a, _ in symbols]
    for path in sys.argv[2:]:
        # Each report: its vCPU lines, then the IDT line of the same boot.
        pending = []
        for line in open(path, errors="replace"):
            m = RIP.search(line)
            if m:
                pending.append(m.groups())
                continue
            m = IDT.search(line)
            if not m:
                if pending and "hung during its first boot" in line:
                    # The report ended without an IDT line (an older fcvm).
                    for cpu, rip, _, _ in pending:
                        print(f"{path}: vCPU {cpu}: RIP={rip}: no IDT handler line, cannot place it")
                    pending = []
                continue
            slide = int(m.group(1), 16) - by_name["asm_exc_divide_error"]
            for cpu, rip, cpl, hlt in pending:
                if cpl != "0":
                    print(f"{path}: vCPU {cpu}: RIP={rip} in user space (CPL={cpl})")
                    continue
                a = int(rip, 16) - slide
                i = bisect.bisect_right(addrs, a) - 1
                where = f"{symbols[i][1]}+0x{a - symbols[i][0]:x}" if i >= 0 else "?"
                print(f"{path}: vCPU {cpu}: {where}{' (halted)' if hlt == '1' else ''}")
            pending = []
        for cpu, rip, _, _ in pending:
            print(f"{path}: vCPU {cpu}: RIP={rip}: no IDT handler line after it, cannot place it")

if __name__ == "__main__":
    main()
