// The g4 program's kernels, split in four units that compile in parallel (g4/impl.hpp says how): this one holds
// the dispatch tables and the public functions.
#define G4_IMPLEMENTATION
#define G4_IMPL_DISPATCH
#include "g4/impl.hpp"
