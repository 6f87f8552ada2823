#pragma once
// Private: kernel CKA without n×n matrices. Tiles of the squared-distance matrix are computed from the
// centered features, used and dropped: the exact median-rule bandwidth by selection on the bit patterns
// of the distances (detail/select.hpp: a few counting passes, nothing kept but counts and the middle
// values), then the centered products in two passes (row sums first, then the centered tiles);
// docs/math.md has the numerics.
// Every pass computes a tile's distances with the same routine, so the passes agree bit for bit, and the
// floating-point sums are combined in tile order, so the value does not depend on the thread count.
// On a team of processes (detail/team.hpp) each member computes its share of the upper tiles (tile_share)
// and every pass ends in one sum over the team: the median's counts exactly, the floating-point sums to
// rounding, so the value does not depend on the number of members beyond ~1e-15.
//
// tiles/grid.hpp     the grid, the loop over a member's upper tiles, the progress meter
// tiles/rows.hpp     rows prepared for tiles, and a tile's squared distances
// tiles/storage.hpp  the upper tiles held in memory; the walk over every pair once
// tiles/median.hpp   the exact median of the distances without holding them
// tiles/passes.hpp   pass A (row sums), pass B (centered products), the block sums of MMD
// tiles/layers.hpp   kernel matrices as the passes read them (RBF, inner-product, generic kernels)

#include <cka/detail/tiles/grid.hpp>
#include <cka/detail/tiles/layers.hpp>
#include <cka/detail/tiles/median.hpp>
#include <cka/detail/tiles/passes.hpp>
#include <cka/detail/tiles/rows.hpp>
#include <cka/detail/tiles/storage.hpp>
