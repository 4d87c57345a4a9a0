#include "llamatron/dedup.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <exception>
#include <memory>

#include <nlohmann/json.hpp>

#include "llamatron/comm.h"
#include "llamatron/corpus.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"
#include "llamatron/minhash.h"
#include "llamatron/random.h"

namespace llamatron {
namespace {

// A bucket entry: (kind/band, key) -> document. k1 is the band for LSH buckets and the exact hash's
// high half (top bit set) for exact ones, so the two never share a bucket.
struct Entry {
  uint64_t k1, k2, doc;
  bool operator<(const Entry& o) const { return std::tie(k1, k2, doc) < std::tie(o.k1, o.k2, o.doc); }
  bool same_bucket(const Entry& o) const { return k1 == o.k1 && k2 == o.k2; }
  bool exact() const { return k1 >> 63; }
};
struct Pair {
  uint64_t a, b;
  bool operator<(const Pair& o) const { return std::tie(a, b) < std::tie(o.a, o.b); }
  bool operator==(const Pair& o) const { return a == o.a && b == o.b; }
};
struct Edge {
  uint64_t a, b, equal;  // equal: signature entries in common (jaccard = equal / num_perm)
};

uint64_t hash64(uint64_t x) { return Rng(x).next(); }
int owner_of_doc(uint64_t doc, int p) { return static_cast<int>(hash64(doc) % static_cast<uint64_t>(p)); }
int owner_of_bucket(const Entry& e, int p) { return static_cast<int>(hash64(e.k2 ^ e.k1) % static_cast<uint64_t>(p)); }

// Records of T (trivially copyable, a multiple of 4 bytes) from every rank to every rank: out[r] goes
// to rank r; returns what each rank sent here, in rank order.
template <typename T>
std::vector<T> all_to_all(Communicator& world, const std::vector<std::vector<T>>& out) {
  static_assert(sizeof(T) % 4 == 0);
  constexpr int64_t words = sizeof(T) / 4;
  const int p = world.size(), me = world.rank();
  std::vector<int32_t> mine(p), counts(static_cast<size_t>(p) * p);
  for (int r = 0; r < p; ++r) {
    if (out[r].size() * words > static_cast<size_t>(INT32_MAX)) throw Error("dedup: a message between ranks exceeds 8 GiB: use more ranks");
    mine[r] = static_cast<int32_t>(out[r].size());
  }
  world.all_gather(mine.data(), counts.data(), p, DType::I32);
  std::vector<std::vector<T>> in(p);
  std::vector<Communicator::Transfer> t;
  for (int r = 0; r < p; ++r) {
    in[r].resize(static_cast<size_t>(counts[static_cast<size_t>(r) * p + me]));
    if (r == me) {
      in[r] = out[r];
      continue;
    }
    if (!out[r].empty()) t.push_back({Communicator::Transfer::Send, r, const_cast<T*>(out[r].data()), static_cast<int64_t>(out[r].size()) * words, DType::I32});
    if (!in[r].empty()) t.push_back({Communicator::Transfer::Recv, r, in[r].data(), static_cast<int64_t>(in[r].size()) * words, DType::I32});
  }
  if (!t.empty()) world.send_recv(t);
  std::vector<T> all;
  for (auto& v : in) all.insert(all.end(), v.begin(), v.end());
  return all;
}

// Every rank's records, on every rank, in rank order.
template <typename T>
std::vector<T> gather_all(Communicator& world, const std::vector<T>& mine) {
  return all_to_all(world, std::vector<std::vector<T>>(world.size(), mine));
}

// This rank's scratch files: band-table partitions and the signatures of its documents.
class Scratch {
 public:
  Scratch(const std::string& dir, int partitions, int num_perm) : dir_(dir), num_perm_(num_perm) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw Error("cannot create the scratch directory " + dir_ + ": " + ec.message() + ": check --tmp");
    for (int i = 0; i < partitions; ++i) parts_.push_back(std::make_unique<CheckedFile>(dir_ + "/part" + std::to_string(i), CheckedFile::Truncate, "dedup scratch file"));
    buffers_.resize(partitions);
    sigs_ = std::make_unique<CheckedFile>(dir_ + "/signatures", CheckedFile::Truncate, "dedup scratch file");
  }
  ~Scratch() {
    if (map_) munmap(map_, map_bytes_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  int partitions() const { return static_cast<int>(parts_.size()); }
  void add(const Entry& e) {
    auto& b = buffers_[(e.k2 >> 32) % buffers_.size()];
    b.push_back(e);
    if (b.size() >= 4096) flush(&b - buffers_.data());
  }
  void add_signature(uint64_t doc, const uint32_t* sig) {
    owned_.push_back(doc);
    sigs_->write({reinterpret_cast<const char*>(sig), sizeof(uint32_t) * num_perm_});
  }
  // After the last add: the files are complete, signatures readable.
  void finish() {
    for (size_t i = 0; i < buffers_.size(); ++i) flush(i), parts_[i]->close(false);
    sigs_->close(false);
    map_bytes_ = owned_.size() * num_perm_ * sizeof(uint32_t);
    if (map_bytes_ == 0) return;
    const int fd = ::open((dir_ + "/signatures").c_str(), O_RDONLY);
    if (fd < 0) throw Error("cannot read back the dedup scratch file " + dir_ + "/signatures: " + std::strerror(errno));
    map_ = mmap(nullptr, map_bytes_, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (map_ == MAP_FAILED) map_ = nullptr, throw Error("cannot map the dedup scratch file " + dir_ + "/signatures: " + std::strerror(errno));
  }
  std::vector<Entry> partition(int i) const {
    const std::string bytes = read_small_file(dir_ + "/part" + std::to_string(i), "dedup scratch file", uint64_t{1} << 40);
    std::vector<Entry> e(bytes.size() / sizeof(Entry));
    std::memcpy(e.data(), bytes.data(), e.size() * sizeof(Entry));
    return e;
  }
  // The signature of a document of this rank.
  const uint32_t* signature(uint64_t doc) const {
    const auto it = std::lower_bound(owned_.begin(), owned_.end(), doc);
    if (it == owned_.end() || *it != doc) throw Error("dedup: internal error: document " + std::to_string(doc) + " has no signature here");
    return static_cast<const uint32_t*>(map_) + static_cast<size_t>(it - owned_.begin()) * num_perm_;
  }

 private:
  void flush(size_t i) {
    auto& b = buffers_[i];
    parts_[i]->write({reinterpret_cast<const char*>(b.data()), b.size() * sizeof(Entry)});
    b.clear();
  }
  std::string dir_;
  int num_perm_;
  std::vector<std::unique_ptr<CheckedFile>> parts_;
  std::vector<std::vector<Entry>> buffers_;
  std::unique_ptr<CheckedFile> sigs_;
  std::vector<uint64_t> owned_;  // this rank's documents with a signature, ascending
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
};

// Union-find whose root is the smallest document of its cluster.
class Clusters {
 public:
  explicit Clusters(size_t n) : parent_(n) {
    for (size_t i = 0; i < n; ++i) parent_[i] = static_cast<uint32_t>(i);
  }
  uint32_t find(uint32_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  void join(uint64_t a, uint64_t b) {
    const uint32_t ra = find(static_cast<uint32_t>(a)), rb = find(static_cast<uint32_t>(b));
    if (ra != rb) parent_[std::max(ra, rb)] = std::min(ra, rb);
  }
  int64_t roots() {
    int64_t n = 0;
    for (size_t i = 0; i < parent_.size(); ++i) n += find(static_cast<uint32_t>(i)) == i;
    return n;
  }

 private:
  std::vector<uint32_t> parent_;
};

constexpr size_t kBatch = 4096;      // documents read between exchanges
constexpr size_t kTask = 8;          // documents hashed by one OpenMP task

// A batch of documents on its way through pass 1: read, then hashed, then sent to its buckets.
struct Batch {
  explicit Batch(int num_perm) : docs(kBatch), sigs(kBatch * num_perm), exact(kBatch), has_sig(kBatch) {}
  std::vector<Document> docs;  // as read; only this rank's keep their text
  size_t read = 0;             // documents read (on every rank alike)
  std::vector<uint64_t> ids;   // this rank's: document ids[i] is docs[at[i]]
  std::vector<size_t> at;
  std::vector<uint32_t> sigs;
  std::vector<XXH128_hash_t> exact;
  std::vector<char> has_sig;
};

constexpr size_t kFullBucket = 64;   // above this, a bucket's members pair with its first and their predecessor only

// Every pair of a bucket, or in a bucket of more than kFullBucket members (a template copied many
// times) each member with the first and with its predecessor: the pairs that connect it.
void bucket_pairs(const Entry* e, size_t m, std::vector<Pair>& out) {
  for (size_t i = 1; i < m; ++i) {
    if (m <= kFullBucket)
      for (size_t j = 0; j < i; ++j) out.push_back({e[j].doc, e[i].doc});
    else
      out.push_back({e[0].doc, e[i].doc}), out.push_back({e[i - 1].doc, e[i].doc});
  }
}

}  // namespace

std::string DedupResult::report_json(const DedupRun& run) const {
  nlohmann::ordered_json j;
  j["documents"] = documents;
  j["bytes"] = bytes;
  j["kept_documents"] = kept;
  j["kept_bytes"] = kept_bytes;
  j["exact_duplicates_removed"] = exact_removed;
  j["near_duplicates_removed"] = near_removed;
  j["candidate_pairs"] = candidate_pairs;
  j["verified_pairs"] = verified_pairs;
  j["params"] = {{"ngram", run.ngram}, {"num_perm", run.num_perm}, {"bands", bands}, {"rows", rows}, {"threshold", run.threshold},
                 {"seed", run.seed}, {"keep", run.keep_longest ? "longest" : "first"}, {"exact_only", run.exact_only}};
  nlohmann::ordered_json hist = nlohmann::ordered_json::object();
  for (const auto& [size, n] : cluster_sizes) hist[std::to_string(size)] = n;
  j["cluster_sizes"] = hist;
  j["seconds"] = seconds;
  return j.dump(2) + "\n";
}

std::string DedupResult::table() const {
  char line[200];
  std::string t;
  const auto row = [&](const char* name, int64_t n, const char* extra) {
    std::snprintf(line, sizeof(line), "  %-24s %10lld docs %6.2f%%%s\n", name, static_cast<long long>(n), documents ? 100.0 * n / documents : 0.0, extra);
    t += line;
  };
  char kept_bytes_s[64];
  std::snprintf(kept_bytes_s, sizeof(kept_bytes_s), "  (%lld of %lld bytes)", static_cast<long long>(kept_bytes), static_cast<long long>(bytes));
  row("input", documents, "");
  row("kept", kept, kept_bytes_s);
  row("exact duplicates", exact_removed, "");
  row("near duplicates", near_removed, "");
  if (bands > 0) {
    std::snprintf(line, sizeof(line), "  LSH %d bands x %d rows: %lld candidate pairs, %lld verified\n", bands, rows,
                  static_cast<long long>(candidate_pairs), static_cast<long long>(verified_pairs));
    t += line;
  }
  t += "  cluster sizes:";
  for (const auto& [size, n] : cluster_sizes) t += " " + std::to_string(size) + ":" + std::to_string(n);
  if (cluster_sizes.empty()) t += " (no duplicates)";
  std::snprintf(line, sizeof(line), "\n  %.2f s, %.0f docs/s, %.1f MB/s\n", seconds, seconds > 0 ? documents / seconds : 0.0,
                seconds > 0 ? bytes / seconds / 1e6 : 0.0);
  return t + line;
}

DedupResult dedup_corpus(const DedupRun& run, Communicator& world) {
  const auto start = std::chrono::steady_clock::now();
  const int p = world.size(), me = world.rank();
  DedupResult r;
  LshBands lsh{run.bands, run.rows};
  if (!run.exact_only) {
    if ((run.bands > 0) != (run.rows > 0)) throw Error("--bands and --rows go together (or give neither: they follow from --threshold)");
    if (lsh.bands == 0) lsh = optimal_bands(run.threshold, run.num_perm);
    if (static_cast<int64_t>(lsh.bands) * lsh.rows > run.num_perm)
      throw Error("--bands x --rows = " + std::to_string(lsh.bands * lsh.rows) + " exceeds --num-perm " + std::to_string(run.num_perm));
    if (!(run.threshold > 0 && run.threshold < 1)) throw Error("--threshold must be in (0, 1)");
    r.bands = lsh.bands, r.rows = lsh.rows;
  }
  if (run.partitions < 1) throw Error("--partitions must be positive");
  check_corpus_inputs(run.inputs);
  const MinHasher hasher(run.num_perm, run.ngram, run.seed);
  const int np = run.num_perm;

  // The output directory and the scratch files first: a bad --out or --tmp fails before any work.
  std::vector<std::string> extras = {"report.json"};
  if (run.write_duplicates) extras.push_back("duplicates.jsonl");
  if (run.write_pairs) extras.push_back("pairs.tsv");
  std::unique_ptr<ShardWriter> writer;
  std::unique_ptr<Scratch> scratch;
  fail_together(world, "", [&] {
    if (me == 0) writer = std::make_unique<ShardWriter>(run.out_dir, run.name, run.shard_bytes, extras);
    const std::string base = run.tmp_dir.empty() ? run.out_dir : run.tmp_dir;
    scratch = std::make_unique<Scratch>(base + "/.dedup-" + run.name + "-" + std::to_string(::getpid()) + "-rank" + std::to_string(me),
                                        run.partitions, np);
  });

  // Pass 1: signatures and bucket entries of this rank's documents, entries sent to their buckets' ranks.
  // A pipeline of batches: while OpenMP tasks hash batch t, the main thread (the one that talks
  // MPI) sends batch t - 1's entries and reads batch t + 1, then joins the hashing.
  std::vector<uint32_t> lengths;  // bytes of every document (every rank reads every input)
  {
    CorpusReader reader(run.inputs);
    Batch slots[2] = {Batch(np), Batch(np)};
    const auto read_batch = [&](Batch& b) {  // the same batches on every rank: each reads every input
      fail_together(world, "", [&] {
        b.ids.clear(), b.at.clear();
        b.read = reader.next_batch(b.docs);
        for (size_t k = 0; k < b.read; ++k) {
          Document& d = b.docs[k];
          const uint64_t id = lengths.size();
          if (id >= UINT32_MAX) throw Error("dedup: more than 4294967295 documents: split the corpus");
          lengths.push_back(static_cast<uint32_t>(std::min<size_t>(d.text.size(), UINT32_MAX)));
          r.bytes += static_cast<int64_t>(d.text.size());
          // What is not hashed here is freed now: the memory in flight is two batches' texts.
          std::string().swap(d.json);
          if (owner_of_doc(id, p) == me) b.at.push_back(k), b.ids.push_back(id);
          else std::string().swap(d.text);
        }
      });
    };
    const auto hash_batch = [&](Batch& b, size_t from, size_t to) {
      for (size_t i = from; i < to; ++i) {
        const std::string norm = normalize_text(b.docs[b.at[i]].text);
        b.exact[i] = XXH3_128bits(norm.data(), norm.size());
        b.has_sig[i] = !run.exact_only && hasher.signature(norm, &b.sigs[i * np]);
      }
    };
    const auto send_entries = [&](const Batch& b) {
      std::vector<std::vector<Entry>> out(p);
      for (size_t i = 0; i < b.ids.size(); ++i) {
        const Entry e{b.exact[i].high64 | (uint64_t{1} << 63), b.exact[i].low64, b.ids[i]};
        out[owner_of_bucket(e, p)].push_back(e);
        if (!b.has_sig[i]) continue;
        for (int band = 0; band < lsh.bands; ++band) {
          const Entry be{static_cast<uint64_t>(band), band_key(&b.sigs[i * np], band, lsh.rows), b.ids[i]};
          out[owner_of_bucket(be, p)].push_back(be);
        }
      }
      const std::vector<Entry> in = all_to_all(world, out);
      fail_together(world, "", [&] {
        for (const Entry& e : in) scratch->add(e);
        for (size_t i = 0; i < b.ids.size(); ++i)
          if (b.has_sig[i]) scratch->add_signature(b.ids[i], &b.sigs[i * np]);
      });
    };
    read_batch(slots[0]);
    for (int t = 0;; ++t) {
      Batch &now = slots[t % 2], &other = slots[(t + 1) % 2];  // other: batch t - 1, then t + 1
      std::exception_ptr error;                               // thrown by every rank alike (fail_together)
#pragma omp parallel
#pragma omp masked
      {
        for (size_t from = 0; from < now.ids.size(); from += kTask) {
#pragma omp task firstprivate(from)
          hash_batch(now, from, std::min(from + kTask, now.ids.size()));
        }
        try {
          if (t > 0) send_entries(other);
          if (now.read > 0) read_batch(other);
        } catch (...) {
          error = std::current_exception();
        }
      }
      if (error) std::rethrow_exception(error);
      if (now.read == 0) break;
    }
  }
  r.documents = static_cast<int64_t>(lengths.size());
  if (r.documents == 0) throw Error("the inputs hold no documents: nothing to deduplicate");
  fail_together(world, "", [&] { scratch->finish(); });

  // Pass 2: each partition of this rank's buckets sorted alone: exact edges, candidate pairs.
  std::vector<Pair> exact_edges, candidates;
  fail_together(world, "", [&] {
    for (int part = 0; part < scratch->partitions(); ++part) {
      std::vector<Entry> e = scratch->partition(part);
      std::sort(e.begin(), e.end());
      for (size_t i = 0, j; i < e.size(); i = j) {
        for (j = i + 1; j < e.size() && e[j].same_bucket(e[i]);) ++j;
        if (e[i].exact())
          for (size_t k = i + 1; k < j; ++k) exact_edges.push_back({e[i].doc, e[k].doc});
        else
          bucket_pairs(&e[i], j - i, candidates);
      }
    }
    std::sort(candidates.begin(), candidates.end());  // a pair shares several bands: verified once
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  });
  // Verification: a pair goes to its first document's rank, which adds that signature and sends it
  // on to the second document's rank, which compares.
  std::vector<Edge> near;
  {
    std::vector<std::vector<Pair>> to_a(p);
    for (const Pair& c : candidates) to_a[owner_of_doc(c.a, p)].push_back(c);
    std::vector<Pair> mine_a = all_to_all(world, to_a);
    std::sort(mine_a.begin(), mine_a.end());  // ...even when its bands are on several ranks
    mine_a.erase(std::unique(mine_a.begin(), mine_a.end()), mine_a.end());
    const size_t rec = 2 + np / 2 + np % 2;  // a, b, then the signature (uint64 words)
    std::vector<std::vector<uint64_t>> to_b(p);
    for (const Pair& c : mine_a) {
      auto& v = to_b[owner_of_doc(c.b, p)];
      v.push_back(c.a), v.push_back(c.b);
      const size_t at = v.size();
      v.resize(at + rec - 2, 0);
      std::memcpy(&v[at], scratch->signature(c.a), sizeof(uint32_t) * np);
    }
    const std::vector<uint64_t> mine_b = all_to_all(world, to_b);
    for (size_t i = 0; i + rec <= mine_b.size(); i += rec) {
      const auto* sig_a = reinterpret_cast<const uint32_t*>(&mine_b[i + 2]);
      const uint32_t* sig_b = scratch->signature(mine_b[i + 1]);
      const double jaccard = estimated_jaccard(sig_a, sig_b, np);
      if (jaccard >= run.threshold) near.push_back({mine_b[i], mine_b[i + 1], static_cast<uint64_t>(std::lround(jaccard * np))});
    }
    double counts[2] = {static_cast<double>(mine_a.size()), static_cast<double>(near.size())};
    world.all_reduce(counts, 2, ReduceOp::Sum);
    r.candidate_pairs = static_cast<int64_t>(counts[0]), r.verified_pairs = static_cast<int64_t>(counts[1]);
  }
  exact_edges = gather_all(world, exact_edges);
  near = gather_all(world, near);
  std::sort(near.begin(), near.end(), [](const Edge& x, const Edge& y) { return std::tie(x.a, x.b) < std::tie(y.a, y.b); });

  // Clusters: exact copies first (what they remove is counted as exact), then near duplicates.
  Clusters clusters(lengths.size());
  for (const Pair& e : exact_edges) clusters.join(e.a, e.b);
  r.exact_removed = r.documents - clusters.roots();
  for (const Edge& e : near) clusters.join(e.a, e.b);
  r.near_removed = r.documents - clusters.roots() - r.exact_removed;
  std::vector<uint32_t> rep(lengths.size()), size(lengths.size(), 0);  // per root: the kept document, the cluster's size
  for (uint32_t i = 0; i < lengths.size(); ++i) {
    const uint32_t root = clusters.find(i);
    if (root == i) rep[i] = i;
    else if (run.keep_longest && lengths[i] > lengths[rep[root]]) rep[root] = i;
    ++size[root];
  }
  for (uint32_t i = 0; i < lengths.size(); ++i)
    if (clusters.find(i) == i && size[i] > 1) ++r.cluster_sizes[size[i]];

  // Pass 3: rank 0 writes the kept documents.
  fail_together(world, "", [&] {
    if (me != 0) return;
    std::unique_ptr<CheckedFile> dup;
    if (run.write_duplicates) dup = std::make_unique<CheckedFile>(writer->extra_path("duplicates.jsonl"), CheckedFile::Truncate, "duplicates.jsonl");
    CorpusReader reader(run.inputs, /*parse_json=*/false);  // kept lines are copied, not parsed again
    std::string lines;
    std::vector<Document> batch(kBatch);
    uint32_t i = 0;
    for (size_t n; (n = reader.next_batch(batch)) > 0;)
      for (size_t k = 0; k < n; ++k, ++i) {
        const Document& d = batch[k];
        const uint32_t kept = rep[clusters.find(i)];
        if (kept == i) {
          writer->write(d);
          ++r.kept, r.kept_bytes += lengths[i];
        } else if (dup) {
          lines += nlohmann::json{{"doc", i}, {"source", d.source()}, {"duplicate_of", kept}}.dump() + "\n";
          if (lines.size() > (1 << 20)) dup->write(lines), lines.clear();
        }
      }
    if (dup) dup->write(lines), dup->close(true);
    if (run.write_pairs) {
      std::string tsv;
      char buf[96];
      for (const Edge& e : near) {
        std::snprintf(buf, sizeof(buf), "%llu\t%llu\t%.6f\n", static_cast<unsigned long long>(e.a), static_cast<unsigned long long>(e.b),
                      static_cast<double>(e.equal) / np);
        tsv += buf;
      }
      writer->write_extra("pairs.tsv", tsv);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    writer->write_extra("report.json", r.report_json(run));
    r.shards = writer->commit();
  });
  r.kept = r.documents - r.exact_removed - r.near_removed;
  return r;
}

}  // namespace llamatron
