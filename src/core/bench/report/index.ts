export { renderCsv } from './csv.js'
export { renderHtml } from './html.js'
export { renderMarkdown } from './markdown.js'
export { renderTable } from './table.js'
