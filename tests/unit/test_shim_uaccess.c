/*
 * The shim's copies to and from application memory (shim/uaccess.c): a
 * bad pointer gives EFAULT or a short count, never a crash.
 */
#include <criterion/criterion.h>

#include "../../shim/uaccess.c"

#include <sys/mman.h>

/* Two pages, the second inaccessible. */
static char *half_mapped(void)
{
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    cr_assert_eq(mprotect(p + 4096, 4096, PROT_NONE), 0);
    return p;
}

Test(shim_uaccess, good_memory_copies_whole)
{
    char src[100], dst[100];
    memset(src, 'a', sizeof(src));
    cr_assert_eq(shim_copy_from_user(dst, src, sizeof(src)), 100);
    cr_assert_eq(memcmp(dst, src, 100), 0);
    memset(src, 'b', sizeof(src));
    cr_assert_eq(shim_copy_to_user(dst, src, sizeof(src)), 100);
    cr_assert_eq(dst[99], 'b');
    cr_assert_eq(shim_copy_to_user(NULL, src, 0), 0);
}

Test(shim_uaccess, bad_pointers_give_efault)
{
    char buf[16];
    cr_assert_eq(shim_copy_from_user(buf, NULL, sizeof(buf)), -EFAULT);
    cr_assert_eq(shim_copy_to_user((void *)8, buf, sizeof(buf)), -EFAULT);
    char *p = half_mapped();
    cr_assert_eq(shim_copy_to_user(p + 4096, buf, sizeof(buf)), -EFAULT);
    munmap(p, 8192);
}

Test(shim_uaccess, a_bad_page_in_the_middle_gives_a_short_copy)
{
    char *p = half_mapped();
    char buf[200];
    memset(buf, 'z', sizeof(buf));
    cr_assert_eq(shim_copy_to_user(p + 4096 - 100, buf, sizeof(buf)), 100);
    cr_assert_eq(p[4095], 'z');
    cr_assert_eq(shim_copy_from_user(buf, p + 4096 - 50, sizeof(buf)), 50);
    munmap(p, 8192);
}

Test(shim_uaccess, read_only_memory_is_not_written)
{
    char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    char buf[8] = "abcdefg";
    cr_assert_eq(shim_copy_to_user(p, buf, sizeof(buf)), -EFAULT);
    cr_assert_eq(shim_copy_from_user(buf, p, sizeof(buf)), 8);
    munmap(p, 4096);
}
