#include "primary_index.h"
