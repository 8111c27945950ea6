/* Builds llhttp from the C sources the system ships (see configure --with-llhttp). */
#include "api.c"
