; b2ct lab guest: a boot sector that proves a VM ran and kept its disk.
; Assembled with `nasm -f bin guest_bootsector.asm` into the bytes in b2ct/lab/guest.py (a test re-assembles
; and compares). On each boot it reads the disk's second sector (LBA 1), adds one to the 16-bit boot
; counter at its start, writes it back, prints "b2ct-guest: up, boot NNNN" (hexadecimal) on COM1 and
; halts. A counter above 1 after a host failure shows the VM came back with the disk it had written.
bits 16
org 0x7c00

start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    sti
    cld
    mov [drive], dl             ; the BIOS passes the boot drive in DL
    mov si, msg_up
    call print
    mov ax, 0x0201              ; read 1 sector
    call sector
    jc fail
    inc word [buffer]
    mov ax, 0x0301              ; write 1 sector
    call sector
    jc fail
    mov si, msg_boot
    call print
    mov al, [buffer + 1]
    call hexbyte
    mov al, [buffer]
    call hexbyte
    mov si, msg_nl
    call print
halt:
    hlt
    jmp halt
fail:
    mov si, msg_fail
    call print
    jmp halt

; AX = function (AH) and count (AL): cylinder 0, head 0, sector 2 of the boot drive, at buffer.
sector:
    mov cx, 0x0002
    xor dh, dh
    mov dl, [drive]
    mov bx, buffer
    int 0x13
    ret

print:                          ; SI: zero-terminated string to COM1
    mov dx, 0x3f8
.next:
    lodsb
    test al, al
    jz .done
    out dx, al
    jmp .next
.done:
    ret

hexbyte:                        ; AL as two hexadecimal digits to COM1
    push ax
    shr al, 4
    call nibble
    pop ax
    and al, 0x0f
nibble:
    add al, '0'
    cmp al, '9'
    jbe .out
    add al, 7
.out:
    mov dx, 0x3f8
    out dx, al
    ret

msg_up:   db "b2ct-guest: up", 0
msg_boot: db ", boot ", 0
msg_nl:   db 13, 10, 0
msg_fail: db ", disk error", 13, 10, 0
drive:    db 0

times 510 - ($ - $$) db 0
dw 0xaa55

buffer equ 0x8000
