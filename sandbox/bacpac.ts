/**
 * BACPAC files as the sandbox's SQL stand-in writes and reads them: a zip
 * (Open Packaging Conventions) holding `model.xml` (the schema), one data file
 * per table under `Data/<schema>.<table>/`, `DacMetadata.xml`, `Origin.xml`
 * and `[Content_Types].xml`, like the files SqlPackage and Azure's export make.
 *
 * The schema model is a small subset of the DAC model (tables and their
 * columns). Table data is kept in a simple native-like layout instead of BCP:
 * each field is a 32-bit little-endian byte length and its UTF-8 bytes, rows
 * back to back.
 *
 * The same content gives the same bytes up to `DacMetadata.xml`, so that
 * repeated exports of an unchanged database share their leading blocks: zip
 * entries carry a fixed time, and what differs between exports (the database's
 * name, the operation's id and times) sits in the small entries at the end.
 */
import { createHash } from 'node:crypto';
import yauzl from 'yauzl';
import yazl from 'yazl';

export interface SqlTable {
  schema: string;
  name: string;
  columns: string[];
  rows: string[][];
}

/** What a sandbox database holds. */
export interface SqlContent {
  tables: SqlTable[];
}

export interface BacpacOrigin {
  databaseName: string;
  serverName: string;
  /** The export operation's id. */
  operationId: string;
  startedAt: Date;
}

const ENTRY_TIME = new Date('2020-01-01T00:00:00Z');
const DAC_NAMESPACE = 'http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02';

/** Builds the BACPAC of `content`. */
export async function writeBacpac(content: SqlContent, origin: BacpacOrigin): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  const add = (name: string, data: Buffer) =>
    zip.addBuffer(data, name, { mtime: ENTRY_TIME, compress: true });

  const model = Buffer.from(modelXml(content));
  add('model.xml', model);
  for (const table of content.tables)
    add(`Data/${table.schema}.${table.name}/TableData-000-00000.BCP`, encodeRows(table.rows));
  add('DacMetadata.xml', Buffer.from(dacMetadataXml(origin.databaseName)));
  add('Origin.xml', Buffer.from(originXml(content, origin, model)));
  add('[Content_Types].xml', Buffer.from(contentTypesXml()));
  zip.end();

  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Reads the tables and rows back out of a BACPAC; throws on anything that is not one. */
export async function readBacpac(bacpac: Buffer): Promise<SqlContent> {
  const entries = await unzip(bacpac);
  const model = entries.get('model.xml');
  if (!model) throw new Error('The file is not a BACPAC: it has no model.xml.');

  const tables: SqlTable[] = [];
  const tablePattern =
    /<Element Type="SqlTable" Name="\[([^\]]+)\]\.\[([^\]]+)\]">([\s\S]*?)<\/Element>\s*<!--end table-->/g;
  for (const match of model.toString('utf8').matchAll(tablePattern)) {
    const [, schema = '', name = '', body = ''] = match;
    const columns = [
      ...body.matchAll(/Type="SqlSimpleColumn" Name="\[[^\]]+\]\.\[[^\]]+\]\.\[([^\]]+)\]"/g),
    ].map((column) => column[1]!);
    const data = entries.get(`Data/${schema}.${name}/TableData-000-00000.BCP`);
    tables.push({
      schema,
      name,
      columns,
      rows: data ? decodeRows(data, columns.length) : [],
    });
  }
  return { tables };
}

function modelXml(content: SqlContent): string {
  const tables = content.tables.map((table) => {
    const columns = table.columns
      .map(
        (column) =>
          `<Entry><Element Type="SqlSimpleColumn" Name="[${table.schema}].[${table.name}].[${column}]"><Property Name="IsNullable" Value="False" /><Relationship Name="TypeSpecifier"><Entry><Element Type="SqlTypeSpecifier"><Property Name="Length" Value="200" /><Relationship Name="Type"><Entry><References ExternalSource="BuiltIns" Name="[nvarchar]" /></Entry></Relationship></Element></Entry></Relationship></Element></Entry>`,
      )
      .join('');
    return `<Element Type="SqlTable" Name="[${table.schema}].[${table.name}]"><Relationship Name="Columns">${columns}</Relationship></Element><!--end table-->`;
  });
  return `<?xml version="1.0" encoding="utf-8"?>\n<DataSchemaModel FileFormatVersion="1.2" SchemaVersion="2.9" DspName="Microsoft.Data.Tools.Schema.Sql.SqlAzureV12DatabaseSchemaProvider" CollationLcid="1033" CollationCaseSensitive="False" xmlns="${DAC_NAMESPACE}"><Model>${tables.join('')}</Model></DataSchemaModel>\n`;
}

function dacMetadataXml(databaseName: string): string {
  return `<?xml version="1.0" encoding="utf-8"?>\n<DacType xmlns="${DAC_NAMESPACE}"><Name>${escapeXml(databaseName)}</Name><Version>1.0.0.0</Version></DacType>\n`;
}

function originXml(content: SqlContent, origin: BacpacOrigin, model: Buffer): string {
  const statistics = content.tables
    .map(
      (t) =>
        `<TableStatistics Name="[${t.schema}].[${t.name}]"><RowCount>${t.rows.length}</RowCount></TableStatistics>`,
    )
    .join('');
  const checksum = createHash('sha256').update(model).digest('hex').toUpperCase();
  return `<?xml version="1.0" encoding="utf-8"?>\n<DacOrigin xmlns="${DAC_NAMESPACE}"><PackageProperties><Version>3.1.0.0</Version><ContainsExportedData>true</ContainsExportedData><StreamVersions><Version StreamName="Data">2.0.0.0</Version><Version StreamName="DeploymentContributors">1.0.0.0</Version></StreamVersions></PackageProperties><Operation><Identity>${origin.operationId}</Identity><Start>${origin.startedAt.toISOString()}</Start><End>${new Date().toISOString()}</End><ProductName>Microsoft.SqlServer.Dac, Version=16.0.0.0</ProductName><ProductVersion>16.0.0.0</ProductVersion><ProductSchema>http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02</ProductSchema></Operation><Server><ServerName>${escapeXml(origin.serverName)}</ServerName><ServerVersion>12.0.2000.8</ServerVersion></Server><ExportStatistics>${statistics}</ExportStatistics><ModelSchemaVersion>2.9</ModelSchemaVersion><Checksums><Checksum Uri="/model.xml">${checksum}</Checksum></Checksums></DacOrigin>\n`;
}

function contentTypesXml(): string {
  return `<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="text/xml" /><Default Extension="BCP" ContentType="application/octet-stream" /></Types>`;
}

function encodeRows(rows: string[][]): Buffer {
  const parts: Buffer[] = [];
  for (const row of rows) {
    for (const field of row) {
      const bytes = Buffer.from(field, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      parts.push(length, bytes);
    }
  }
  return Buffer.concat(parts);
}

function decodeRows(data: Buffer, columns: number): string[][] {
  const rows: string[][] = [];
  let offset = 0;
  while (offset < data.length) {
    const row: string[] = [];
    for (let i = 0; i < columns; i++) {
      const length = data.readUInt32LE(offset);
      row.push(data.subarray(offset + 4, offset + 4 + length).toString('utf8'));
      offset += 4 + length;
    }
    rows.push(row);
  }
  return rows;
}

function unzip(zip: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(zip, { lazyEntries: true }, (error, file) => {
      if (error || !file) return reject(new Error(`The file is not a BACPAC: ${error?.message}`));
      const entries = new Map<string, Buffer>();
      file.on('error', reject);
      file.on('end', () => resolve(entries));
      file.on('entry', (entry: yauzl.Entry) => {
        file.openReadStream(entry, (streamError, stream) => {
          if (streamError || !stream) return reject(streamError);
          const chunks: Buffer[] = [];
          stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          stream.on('error', reject);
          stream.on('end', () => {
            entries.set(entry.fileName, Buffer.concat(chunks));
            file.readEntry();
          });
        });
      });
      file.readEntry();
    });
  });
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
