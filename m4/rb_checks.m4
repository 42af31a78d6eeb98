# Checks shared by configure.ac. Every required dependency that is missing
# stops configure with one line naming the Debian package to install.

# RB_CHECK_C11: the compiler must accept C11 (we use _Thread_local,
# _Static_assert and anonymous unions).
AC_DEFUN([RB_CHECK_C11], [
  AC_CACHE_CHECK([whether $CC accepts C11], [rb_cv_c11], [
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[
      _Static_assert(sizeof(int) >= 2, "int");
      static _Thread_local int tls;]], [[return tls;]])],
      [rb_cv_c11=yes], [rb_cv_c11=no])])
  AS_IF([test "x$rb_cv_c11" != xyes],
    [AC_MSG_ERROR([$CC does not accept C11: install gcc (Debian package gcc) or set CC])])
])

# RB_REQUIRE_PKG(VAR, MODULES, NAME, DEBIAN-PACKAGE)
AC_DEFUN([RB_REQUIRE_PKG], [
  PKG_CHECK_MODULES([$1], [$2], [],
    [AC_MSG_ERROR([$3 not found (pkg-config module '$2'): install the Debian package $4])])
])

# RB_REQUIRE_DNNL: oneDNN ships no pkg-config file on Debian, so look for
# its header and library directly.
AC_DEFUN([RB_REQUIRE_DNNL], [
  AC_CHECK_HEADER([oneapi/dnnl/dnnl.h], [],
    [AC_MSG_ERROR([oneDNN header oneapi/dnnl/dnnl.h not found: install the Debian package libdnnl-dev])])
  rb_save_LIBS=$LIBS
  AC_SEARCH_LIBS([dnnl_engine_create], [dnnl], [],
    [AC_MSG_ERROR([oneDNN library (libdnnl) not found: install the Debian package libdnnl-dev])])
  LIBS=$rb_save_LIBS
  DNNL_LIBS="-ldnnl"
  AC_SUBST([DNNL_LIBS])
])

# RB_REQUIRE_LIBDL: dlopen lives in libc from glibc 2.34 on, in libdl before.
AC_DEFUN([RB_REQUIRE_LIBDL], [
  rb_save_LIBS=$LIBS
  LIBS=
  AC_SEARCH_LIBS([dlopen], [dl], [],
    [AC_MSG_ERROR([dlopen not found: install the Debian package libc6-dev])])
  DL_LIBS=$LIBS
  LIBS=$rb_save_LIBS
  AC_SUBST([DL_LIBS])
])

# RB_ARG_MPI: --with-mpi (off by default until data-parallel training lands).
AC_DEFUN([RB_ARG_MPI], [
  AC_ARG_WITH([mpi],
    [AS_HELP_STRING([--with-mpi], [build MPI data-parallel support (Open MPI; default: no)])],
    [rb_with_mpi=$withval], [rb_with_mpi=no])
  AS_IF([test "x$rb_with_mpi" != xno], [
    PKG_CHECK_MODULES([MPI], [ompi-c], [],
      [AC_MSG_ERROR([--with-mpi: Open MPI not found: install the Debian packages libopenmpi-dev openmpi-bin])])
    AC_DEFINE([RB_HAVE_MPI], [1], [Define to 1 when built with MPI support.])
    rb_with_mpi=yes
  ])
  AM_CONDITIONAL([RB_MPI], [test "x$rb_with_mpi" = xyes])
])

# RB_ARG_SANITIZERS: --enable-sanitizers builds everything with ASan+UBSan.
AC_DEFUN([RB_ARG_SANITIZERS], [
  AC_ARG_ENABLE([sanitizers],
    [AS_HELP_STRING([--enable-sanitizers], [build with AddressSanitizer and UndefinedBehaviorSanitizer])],
    [], [enable_sanitizers=no])
  AS_IF([test "x$enable_sanitizers" = xyes], [
    rb_san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    rb_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS $rb_san"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])], [],
      [AC_MSG_ERROR([--enable-sanitizers: $CC cannot link with $rb_san: install the Debian package libasan8 (gcc) or libclang-rt-14-dev (clang)])])
    CFLAGS=$rb_save_CFLAGS
    SANITIZER_CFLAGS=$rb_san
  ])
  AC_SUBST([SANITIZER_CFLAGS])
])

# RB_ARG_WERROR: --enable-werror turns warnings into errors (CI uses it).
AC_DEFUN([RB_ARG_WERROR], [
  AC_ARG_ENABLE([werror],
    [AS_HELP_STRING([--enable-werror], [treat compiler warnings as errors (CI does)])],
    [], [enable_werror=no])
])

# RB_WARN_CFLAGS: the warning set every file is compiled with; only flags the
# compiler accepts are kept, so gcc and clang both build warning-free.
AC_DEFUN([RB_WARN_CFLAGS], [
  WARN_CFLAGS=
  for rb_flag in -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
                 -Wformat=2 -Wundef -Wvla -Wpointer-arith -Wcast-align \
                 -Wno-missing-field-initializers; do
    AC_MSG_CHECKING([whether $CC accepts $rb_flag])
    rb_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -Werror $rb_flag"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
      [WARN_CFLAGS="$WARN_CFLAGS $rb_flag"; AC_MSG_RESULT([yes])], [AC_MSG_RESULT([no])])
    CFLAGS=$rb_save_CFLAGS
  done
  AS_IF([test "x$enable_werror" = xyes], [WARN_CFLAGS="$WARN_CFLAGS -Werror"])
  AC_SUBST([WARN_CFLAGS])
])
