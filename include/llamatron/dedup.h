// `llamatron data dedup`: exact duplicates by a 128-bit hash of the normalised text, near duplicates
// by MinHash + LSH (minhash.h), candidate pairs verified by their estimated Jaccard, clusters by
// union-find, one document kept per cluster (docs/data.md).
//
// Streaming, bounded memory: signatures go to a file on disk and band entries to partition files,
// each partition sorted on its own; in memory stay ~16 bytes per document (length, union-find parent,
// representative, cluster size). Under mpirun, document i belongs to rank hash(i) mod p (its
// signature is computed and stored there) and each bucket to rank hash(bucket) mod p; a candidate
// pair travels to the owner of its first document, which sends that signature on to the owner of
// the second, which verifies. Rank 0 writes the output, identical to the single-process result.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace llamatron {

class Communicator;

struct DedupRun {
  std::vector<std::string> inputs;
  std::string out_dir, name = "data", tmp_dir;  // tmp_dir "": inside out_dir
  int64_t shard_bytes = int64_t{256} << 20;
  int ngram = 5, num_perm = 128, bands = 0, rows = 0;  // bands = rows = 0: chosen from the threshold
  double threshold = 0.8;
  uint64_t seed = 1;
  bool keep_longest = false;  // else the first document of a cluster (input order)
  bool exact_only = false;    // no MinHash: exact duplicates only
  int partitions = 16;        // band-table partitions per rank (each sorted in memory alone)
  bool write_duplicates = false;  // out_dir/duplicates.jsonl: each removed document and the one kept for it
  bool write_pairs = false;       // out_dir/pairs.tsv: each verified near-duplicate pair "i j jaccard"
};

struct DedupResult {
  int64_t documents = 0, bytes = 0, kept = 0, kept_bytes = 0;
  int64_t exact_removed = 0, near_removed = 0;  // removed as exact copies; removed on top as near duplicates
  int64_t candidate_pairs = 0, verified_pairs = 0;
  int bands = 0, rows = 0;
  std::map<int64_t, int64_t> cluster_sizes;  // size (>= 2) -> clusters
  std::vector<std::string> shards;
  double seconds = 0;
  std::string report_json(const DedupRun& run) const;
  std::string table() const;
};

// Collective over `world` (every rank reads every input; rank 0 writes). Errors: Error, every rank.
DedupResult dedup_corpus(const DedupRun& run, Communicator& world);

}  // namespace llamatron
