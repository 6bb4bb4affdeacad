#include "block_device.h"
