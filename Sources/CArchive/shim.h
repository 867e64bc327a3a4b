#include <archive.h>
#include <archive_entry.h>

// The file type macros are casts, which Swift does not import.
static const unsigned int hub_archive_regular_file = AE_IFREG;
static const unsigned int hub_archive_directory = AE_IFDIR;
