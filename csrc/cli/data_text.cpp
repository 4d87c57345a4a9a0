// `llamatron data filter` and `llamatron data dedup`: raw text -> kept documents + report (docs/data.md).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "llamatron/comm.h"
#include "llamatron/dedup.h"
#include "llamatron/text_filter.h"

namespace llamatron {

void add_data_filter(CLI::App& data, FilterRun& run, CLI::App*& cmd) {
  cmd = data.add_subcommand("filter", "raw text -> documents that pass heuristic quality rules (.jsonl shards + report.json)");
  cmd->add_option("inputs", run.inputs, ".txt (one document), .jsonl / .jsonl.gz / .jsonl.zst (one {\"text\": ...} per line)")->required();
  cmd->add_option("--out", run.out_dir, "output directory (must not hold an earlier run's output)")->required();
  cmd->add_option("--name", run.name, "output file name stem (default data)");
  cmd->add_option("--shard-bytes", run.shard_bytes, "bytes per output shard (default 256 MiB)");
  FilterOptions& o = run.rules;
  cmd->add_option("--min-words", o.min_words, "fewest words (default 50)");
  cmd->add_option("--max-words", o.max_words, "most words (default 100000)");
  cmd->add_option("--min-mean-word-length", o.min_mean_word_length, "characters per word, at least (default 3)");
  cmd->add_option("--max-mean-word-length", o.max_mean_word_length, "characters per word, at most (default 10)");
  cmd->add_option("--min-alpha-fraction", o.min_alpha_fraction, "letters / non-space characters, at least (default 0.5)");
  cmd->add_option("--max-symbol-ratio", o.max_symbol_ratio, "('#' + '...' + U+2026) per word, at most (default 0.1)");
  cmd->add_option("--max-ellipsis-lines", o.max_ellipsis_lines, "share of lines ending in an ellipsis, at most (default 0.3)");
  cmd->add_option("--max-duplicate-lines", o.max_duplicate_lines, "share of lines repeating an earlier line, at most (default 0.3)");
  cmd->add_option("--max-top-char-fraction", o.max_top_char_fraction, "the commonest character's share, at most (default 0: off)");
  cmd->add_option("--invalid-utf8", o.repair_utf8, "drop (default) or repair documents that are not valid UTF-8")
      ->transform(CLI::CheckedTransformer(std::map<std::string, bool>{{"drop", false}, {"repair", true}}));
  cmd->add_flag("--write-dropped", run.write_dropped, "also write dropped.jsonl: each dropped document's source, rule and value");
}

void add_data_dedup(CLI::App& data, DedupRun& run, CLI::App*& cmd) {
  cmd = data.add_subcommand("dedup", "remove exact and near duplicates (MinHash + LSH) -> .jsonl shards + report.json; "
                                     "under mpirun the work splits over ranks");
  cmd->add_option("inputs", run.inputs, ".txt (one document), .jsonl / .jsonl.gz / .jsonl.zst (one {\"text\": ...} per line)")->required();
  cmd->add_option("--out", run.out_dir, "output directory (must not hold an earlier run's output)")->required();
  cmd->add_option("--name", run.name, "output file name stem (default data)");
  cmd->add_option("--shard-bytes", run.shard_bytes, "bytes per output shard (default 256 MiB)");
  cmd->add_option("--tmp", run.tmp_dir, "scratch directory for signatures and band tables (default: inside --out)");
  cmd->add_option("--ngram", run.ngram, "words per shingle (default 5)");
  cmd->add_option("--num-perm", run.num_perm, "MinHash permutations (default 128)");
  cmd->add_option("--threshold", run.threshold, "Jaccard similarity that makes a near duplicate (default 0.8)");
  cmd->add_option("--bands", run.bands, "LSH bands (default: chosen from --threshold, as datasketch does)");
  cmd->add_option("--rows", run.rows, "LSH rows per band (with --bands)");
  cmd->add_option("--seed", run.seed, "hash seed (default 1)");
  cmd->add_option("--keep", run.keep_longest, "which document of a cluster stays: first (input order, default) or longest")
      ->transform(CLI::CheckedTransformer(std::map<std::string, bool>{{"first", false}, {"longest", true}}));
  cmd->add_flag("--exact-only", run.exact_only, "exact duplicates only (no MinHash)");
  cmd->add_option("--partitions", run.partitions, "band-table partitions per rank, each sorted in memory alone (default 16)");
  cmd->add_flag("--write-duplicates", run.write_duplicates, "also write duplicates.jsonl: each removed document and the one kept");
  cmd->add_flag("--write-pairs", run.write_pairs, "also write pairs.tsv: the verified near-duplicate pairs and their Jaccard");
}

int cmd_data_filter(const FilterRun& run) {
  const FilterResult r = filter_corpus(run);
  std::printf("filter: %lld of %lld documents kept -> %zu shard(s) and report.json in %s\n%s", static_cast<long long>(r.docs[0]),
              static_cast<long long>(r.documents), r.shards.size(), run.out_dir.c_str(), r.table().c_str());
  return 0;
}

int cmd_data_dedup(const DedupRun& run) {
  const DedupResult r = dedup_corpus(run, world());
  if (world().rank() == 0)
    std::printf("dedup: %lld of %lld documents kept -> %zu shard(s) and report.json in %s (%d rank(s))\n%s", static_cast<long long>(r.kept),
                static_cast<long long>(r.documents), r.shards.size(), run.out_dir.c_str(), world().size(), r.table().c_str());
  return 0;
}

}  // namespace llamatron
