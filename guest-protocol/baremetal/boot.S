/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * Multiboot (v1) entry for the coco-attest bare-metal test guest: QEMU's
 * -kernel loads it in 32-bit protected mode with paging off, so guest
 * physical addresses are the pointers.
 */
#define MB_MAGIC    0x1badb002
#define MB_FLAGS    0x00000003      /* page-align modules, memory info */

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .text
    .globl _start
_start:
    cli
    movl $stack_top, %esp
    pushl %ebx                      /* multiboot info */
    pushl %eax                      /* multiboot magic */
    call guest_main
1:  hlt
    jmp 1b

    .section .bss
    .align 16
stack:
    .skip 65536
stack_top:

    .section .note.GNU-stack, "", @progbits
