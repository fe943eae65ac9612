#pragma once

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

namespace relay {

/// A plain-text table for relayctl: columns as wide as their widest cell,
/// two spaces apart, a header row first. Widths count bytes (UTF-8 text
/// in a cell may misalign its row, never break it).
class table {
public:
  explicit table(std::vector<std::string> header) {
    rows_.push_back(std::move(header));
  }

  /// Adds a row; missing cells are empty, extra cells are dropped.
  void add(std::vector<std::string> row) {
    row.resize(rows_.front().size());
    rows_.push_back(std::move(row));
  }

  void print(std::ostream& out) const {
    std::vector<size_t> widths(rows_.front().size(), 0);
    for (auto& row : rows_)
      for (size_t i = 0; i < row.size(); ++i)
        widths[i] = std::max(widths[i], row[i].size());
    for (auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size())
          line += std::string(widths[i] - row[i].size() + 2, ' ');
      }
      out << line << '\n';
    }
  }

private:
  std::vector<std::vector<std::string>> rows_;
};

} // namespace relay
