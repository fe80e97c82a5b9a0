// SPDX-License-Identifier: GPL-2.0-or-later
/* test_killpriv.c - the setuid/setgid rule of killpriv.h against the kernel's
 * setattr_should_drop_suidgid() and posix_acl_update_mode(), case by case. */
#include <check.h>
#include <glib.h>
#include <stdlib.h>

#include "killpriv.h"

static const struct {
	enum killpriv_cause cause;
	mode_t mode;
	bool in_group, fsetid;
	mode_t want;
} cases[] = {
	/* write/truncate/fallocate */
	{KILLPRIV_WRITE, S_IFREG | 02664, false, false, S_IFREG | 0664}, /* not in group */
	{KILLPRIV_WRITE, S_IFREG | 02664, true, false, S_IFREG | 02664}, /* member, no g+x */
	{KILLPRIV_WRITE, S_IFREG | 02674, true, false, S_IFREG | 0674},	 /* g+x: always */
	{KILLPRIV_WRITE, S_IFREG | 06666, true, false, S_IFREG | 02666}, /* setuid always */
	{KILLPRIV_WRITE, S_IFREG | 06666, false, false, S_IFREG | 0666},
	{KILLPRIV_WRITE, S_IFREG | 06777, false, true, S_IFREG | 06777}, /* CAP_FSETID */
	{KILLPRIV_WRITE, S_IFREG | 0644, false, false, S_IFREG | 0644},
	{KILLPRIV_WRITE, S_IFDIR | 02775, false, false, S_IFDIR | 02775}, /* files only */
	/* access ACL */
	{KILLPRIV_ACL, S_IFREG | 02664, false, false, S_IFREG | 0664},
	{KILLPRIV_ACL, S_IFREG | 02664, true, false, S_IFREG | 02664},
	{KILLPRIV_ACL, S_IFREG | 02664, false, true, S_IFREG | 02664},
	{KILLPRIV_ACL, S_IFREG | 04755, false, false, S_IFREG | 04755}, /* setuid stays */
	{KILLPRIV_ACL, S_IFDIR | 02775, false, false, S_IFDIR | 0775},	/* directories too */
};

START_TEST(test_rule)
{
	mode_t got = killpriv_rule(cases[_i].cause, cases[_i].mode, cases[_i].in_group,
				   cases[_i].fsetid);
	ck_assert_msg(got == cases[_i].want, "case %d: mode 0%o -> 0%o, want 0%o", _i,
		      cases[_i].mode, got, cases[_i].want);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("killpriv");
	TCase *tc = tcase_create("rule");
	tcase_add_loop_test(tc, test_rule, 0, G_N_ELEMENTS(cases));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
