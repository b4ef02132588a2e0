"""A 100-byte x86 multiboot "kernel" for probing accelerators and parking a VM.

QEMU's ``-kernel`` loads it through SeaBIOS and its multiboot option ROM (real mode -> protected mode),
the same path a Linux boot starts with. It switches to 64-bit long mode with
paging (where Linux guests hang under a broken nested KVM), prints a marker on COM1, writes ``EXIT_VALUE`` to an
``isa-debug-exit`` port at 0xf4 (QEMU then exits with status ``EXIT_STATUS``) and otherwise halts forever,
so without that device the guest just stays ``running``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

MARKER = b"katatest-probe-ok\n"
EXIT_PORT = 0xF4
EXIT_VALUE = 0x31
EXIT_STATUS = (EXIT_VALUE << 1) | 1  # what isa-debug-exit makes QEMU return
_LOAD_ADDR = 0x100000
_MAGIC = 0x1BADB002
_FLAGS = 0x00010000  # the address fields below are valid (no ELF needed)


# Assembled (GNU as --32, objcopy -O binary) from _SOURCE; loaded right after the 32-byte header.
_CODE = bytes.fromhex(
    "fcbf0000200031c0b9000c0000f3abc7050000200003102000c7050010200003202000c7050020200083000000c70508"
    "20200083002000b8000020000f22d80f20e083c8200f22e0b9800000c00f320d000100000f300f0115c00010000f20c0"
    "0d010000800f22c0ea8f001000080066baf803488d3425c6001000b912000000aceee2fc66baf400b031eefaf4ebfc90"
    "000000000000000000000000009a20000f00b00010006b617461746573742d70726f62652d6f6b0a"
)

_SOURCE = r"""
.code32
.set BASE, 0x100000
.set PML4, 0x200000
.set PDPT, 0x201000
.set PD,   0x202000
start:
    cld
    /* zero 3 pages of page tables */
    mov $PML4, %edi
    xor %eax, %eax
    mov $(3*1024), %ecx
    rep stosl
    movl $(PDPT | 3), PML4
    movl $(PD | 3), PDPT
    movl $0x83, PD          /* 0-2MiB, 2MiB page, present+rw */
    movl $(0x200000 | 0x83), PD+8
    mov $PML4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax          /* PAE */
    mov %eax, %cr4
    mov $0xC0000080, %ecx   /* EFER */
    rdmsr
    or $0x100, %eax         /* LME */
    wrmsr
    lgdt (BASE + gdtr - start + 32)
    mov %cr0, %eax
    or $0x80000001, %eax    /* PG|PE */
    mov %eax, %cr0
    ljmp $0x08, $(BASE + long64 - start + 32)
.code64
long64:
    mov $0x3f8, %dx
    lea (BASE + msg - start + 32), %rsi
    mov $(msgend - msg), %ecx
1:  lodsb
    out %al, %dx
    loop 1b
    mov $0xf4, %dx
    mov $0x31, %al
    out %al, %dx
2:  cli
    hlt
    jmp 2b
.align 8
gdt:
    .quad 0
    .quad 0x00209A0000000000   /* 64-bit code */
gdtr:
    .word gdtr - gdt - 1
    .long BASE + gdt - start + 32
msg: .ascii "katatest-probe-ok\n"
msgend:
"""


def probe_kernel_bytes() -> bytes:
    header_size = 32
    header = struct.pack("<8I", _MAGIC, _FLAGS, (-(_MAGIC + _FLAGS)) & 0xFFFFFFFF,
                         _LOAD_ADDR, _LOAD_ADDR, 0, 0, _LOAD_ADDR + header_size)
    return header + _CODE


def write_probe_kernel(path: str | Path) -> Path:
    """Write the probe kernel to ``path`` (idempotent) and return the path."""
    path = Path(path)
    data = probe_kernel_bytes()
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path
