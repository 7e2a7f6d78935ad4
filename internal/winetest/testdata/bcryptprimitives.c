/*
 * bcryptprimitives.dll for Wine 8, which lacks it: Go's Windows runtime
 * loads ProcessPrng from it at start ("fatal error: bcryptprimitives.dll
 * not found"). This one hands the work to RtlGenRandom (advapi32's
 * SystemFunction036), as Windows itself did before Windows 10.
 *
 * Built by package winetest with Debian's gcc-mingw-w64-x86-64:
 *   x86_64-w64-mingw32-gcc -shared -O2 -s -o bcryptprimitives.dll \
 *       bcryptprimitives.c bcryptprimitives.def -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
	while (length > 0) {
		ULONG n = length > 0x40000000 ? 0x40000000 : (ULONG)length;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		length -= n;
	}
	return TRUE;
}
